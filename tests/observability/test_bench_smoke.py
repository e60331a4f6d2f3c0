"""The harness runs end to end (one second per measurement; the baseline and
the catalog, so the side-by-side rounds run too; the LOOKUP and the direct
REST back end, so the rounds in turn run too; and the ways there). No figure is asserted:
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
from tests.support.processes import free_port_block

pytestmark = pytest.mark.slow
# PORT, PORT + 1 (a second process), PORT + 20 and + 21 (side by side), + 22 and + 23 (in turn)
SERVER_PORTS = 24


def test_a_one_second_run_writes_a_report(tmp_path: Path) -> None:
    if shutil.which("wrk") is None:  # make installs it; fail under CI, skip on a laptop
        unavailable("wrk (Debian package)", FileNotFoundError("wrk"))
    # The servers take PORT .. PORT + 23 (bench/run.py), the simulators the 13
    # ports after them: all below the ephemeral range, where no connection the
    # earlier tests left in TIME_WAIT can hold one.
    base = free_port_block(SERVER_PORTS + 13)
    env = {**os.environ, "BENCH_PORT": str(base), "BENCH_SIM_BASE_PORT": str(base + SERVER_PORTS)}
    run = subprocess.run(
        [sys.executable, "-m", "bench.run", "--seconds", "1", "--only",
         "baseline,gateway: catalog,gateway: LOOKUP,direct: REST", "--soak", "0",
         "--no-profile", "--out", str(tmp_path)],
        cwd=ROOT, env=env, capture_output=True, timeout=300,
    )  # fmt: skip
    assert run.returncode == 0, run.stderr.decode(errors="replace")[-4000:]
    report = (tmp_path / "report.md").read_text()
    assert "| baseline: Starlette JSON |" in report
    assert "| 0 | baseline" in report  # no errors
    assert "| gateway: catalog |" in report
    # Both servers measured in turn, every round answered without an error.
    assert "## Catalog and baseline side by side" in report
    assert "measured in turn (9 rounds)" in report
    assert "; 0 errors;" in report
    # The LOOKUP's overhead judged from its rounds in turn with the direct back end.
    assert "## LOOKUP and its back end in turn" in report
    overhead = next(line for line in report.splitlines() if "LOOKUP on SQLite" in line)
    assert "6 rounds in turn, 0 errors" in overhead
    # The ways there, each against the same gateway without it, every answer good.
    ways = report.split("## The ways there, one at a time (in process)")[1].split("\n## ")[0]
    rows = [line for line in ways.splitlines() if line.startswith("| ") and "---" not in line]
    assert len(rows) == 8  # the header and seven ways
    assert all(row.endswith("| 0 |") for row in rows[1:])
