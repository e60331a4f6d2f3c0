"""The harness runs end to end (one second per measurement, the baseline and
the catalog, so the side-by-side rounds run too). No figure is asserted:
timings belong in bench/results, not in a test."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from gateway.settings import ROOT
from tests.conftest import unavailable
from tests.support.gateway import free_port

pytestmark = pytest.mark.slow


def test_a_one_second_run_writes_a_report(tmp_path: Path) -> None:
    if shutil.which("wrk") is None:  # make installs it; fail under CI, skip on a laptop
        unavailable("wrk (Debian package)", FileNotFoundError("wrk"))
    # Simulator ports are consecutive from the base; a free one plus 13 is
    # very likely free too on a test machine.
    env = {**os.environ, "BENCH_PORT": str(free_port()), "BENCH_SIM_BASE_PORT": str(free_port())}
    subprocess.run(
        [sys.executable, "-m", "bench.run", "--seconds", "1", "--only",
         "baseline,gateway: catalog", "--soak", "0", "--no-profile", "--out", str(tmp_path)],
        cwd=ROOT, env=env, check=True, capture_output=True, timeout=300,
    )  # fmt: skip
    report = (tmp_path / "report.md").read_text()
    assert "| baseline: Starlette JSON |" in report
    assert "| 0 | baseline" in report  # no errors
    assert "| gateway: catalog |" in report
    # Both servers measured in turn, every round answered without an error.
    assert "## Catalog and baseline side by side" in report
    assert "measured in turn (9 rounds)" in report
    assert "; 0 errors;" in report
