"""GraphQL over HTTP: graphql-http's server audits (npm), run one after another
against the gateway on a loopback port; every audit must pass, the MAYs too,
since the gateway implements each of them on purpose."""

from __future__ import annotations

import json
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from gateway.settings import ROOT
from tests.http.conftest import served_in_thread, settings_for

SCRIPT = Path(__file__).with_name("audits.cjs")
INSTALL_HINT = "graphql-http is missing: run `npm ci` (make test does)"


def _node(*args: str) -> list[dict[str, Any]]:
    done = subprocess.run(
        ["node", str(SCRIPT), *args], cwd=ROOT, capture_output=True, text=True, timeout=120
    )
    if done.returncode != 0:
        raise RuntimeError(f"audits.cjs failed: {done.stderr.strip()[-2000:]}")
    results: list[dict[str, Any]] = json.loads(done.stdout)
    return results


def _listed() -> list[Any]:
    """The audits, named at collection; one failing case if they can't be."""
    if shutil.which("node") is None or not (ROOT / "node_modules" / "graphql-http").is_dir():
        return [pytest.param(None, id="graphql-http-not-installed")]
    return [pytest.param(a, id=f"{a['id']} {a['name']}") for a in _node("--list")]


AUDITS = _listed()


@pytest.fixture(scope="module")
def results(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, dict[str, Any]]]:
    settings = settings_for(tmp_path_factory.mktemp("audits"))
    with served_in_thread(settings) as url:
        yield {r["id"]: r for r in _node(f"{url}/graphql")}


def test_all_61_audits_are_run() -> None:
    assert len(AUDITS) == 61, INSTALL_HINT


@pytest.mark.parametrize("audit", AUDITS)
def test_audit(audit: dict[str, Any] | None, results: dict[str, dict[str, Any]]) -> None:
    assert audit is not None, INSTALL_HINT
    result = results[audit["id"]]
    assert result["status"] == "ok", f"{result['reason']} -- response: {result['response']}"
