"""The overhead targets compare the LOOKUP with the direct back end measured
in turn, so that the machine's drift between two rows minutes apart cannot
decide them (bench/run.py's _lookup_in_turn, bench/report.py's InTurn)."""

from __future__ import annotations

from pathlib import Path

import pytest

from bench.loadgen import ClosedLoop, OpenLoop, pooled
from bench.measure import Usage
from bench.report import InTurn, Result, write_report
from bench.scenarios import LOOKUP_ROW

DIRECT = "direct: REST connector"


def _run(*latencies_ms: float, steal: float = 0.0, errors: int = 0) -> OpenLoop:
    ordered = sorted(latencies_ms)
    return OpenLoop(rate=400, achieved=400, sent=len(ordered), p50_ms=ordered[len(ordered) // 2],
                    p99_ms=ordered[-1], max_ms=ordered[-1], errors=errors, steal_percent=steal,
                    latencies_ms=tuple(latencies_ms))  # fmt: skip


def test_pooled_percentiles_take_every_request_of_every_run() -> None:
    # Alone, each run's median is 1 and 3 ms; together 2 ms.
    one, two = _run(*[1.0] * 50), _run(*[3.0] * 50)
    p50, _ = pooled([one, two])
    assert p50 == pytest.approx(2.0)
    _, p99 = pooled([_run(*[1.0] * 99), _run(50.0)])
    assert p99 == pytest.approx(1.49)  # the one slow request of 100 is the 100th percentile


def _report(tmp_path: Path, turn: InTurn) -> str:
    usage = Usage(cpu_seconds=5, wall_seconds=5)
    closed = ClosedLoop(rps=800, requests=4000, errors=0)
    # Minutes apart, the table's rows saw the machine at different speeds:
    # taken alone they would put the overhead at +5 ms.
    lookup = Result(LOOKUP_ROW, DIRECT, closed, _run(*[7.0] * 100), usage, usage)
    direct = Result(DIRECT, "baseline: Starlette JSON", closed, _run(*[1.5] * 100), usage, usage,
                    paired={LOOKUP_ROW: _run(*[2.0] * 100)})  # fmt: skip
    return write_report([lookup, direct], tmp_path, 5, None, in_turn=[turn]).read_text()


def test_the_overhead_is_judged_on_the_rounds_in_turn(tmp_path: Path) -> None:
    rounds = [(_run(*[2.6] * 100), _run(*[2.0] * 100)), (_run(*[3.4] * 100), _run(*[2.9] * 100))]
    report = _report(tmp_path, InTurn(LOOKUP_ROW, rounds))
    line = next(line for line in report.splitlines() if "LOOKUP on SQLite" in line)
    assert "p50 +0.5 ms" in line
    assert "2 rounds in turn, 0 errors" in line
    assert "the table's rows, minutes apart: p50 +5.0" in line  # shown, not judged
    assert line.endswith("| **met** |")
    assert "## LOOKUP and its back end in turn" in report
    assert f"| {LOOKUP_ROW} | 2 | 400 | 3.4 / 3.4 | 2.9 / 2.9 | 0.0 |" in report


def test_a_round_in_turn_that_failed_requests_fails_the_target(tmp_path: Path) -> None:
    rounds = [(_run(*[2.1] * 100, errors=3), _run(*[2.0] * 100))]
    line = next(
        line
        for line in _report(tmp_path, InTurn(LOOKUP_ROW, rounds)).splitlines()
        if "LOOKUP on SQLite" in line
    )
    assert "1 round in turn, 3 errors" in line
    assert line.endswith("| **not met** |")
