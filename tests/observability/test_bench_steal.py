"""The harness reports the CPU time the host took from this machine during
each fixed-rate measurement, so a latency target missed while the host ran
other guests can be told from one the server missed (bench/measure.py)."""

from __future__ import annotations

from collections import namedtuple
from collections.abc import Iterator
from pathlib import Path

import pytest

from bench import measure
from bench.loadgen import ClosedLoop, OpenLoop
from bench.measure import Usage, host_steal
from bench.report import Result, write_report
from bench.scenarios import LOOKUP_PG_ROW

# The fields of psutil.cpu_times() on Linux, guest time counted inside user.
CpuTimes = namedtuple(
    "CpuTimes",
    "user nice system idle iowait irq softirq steal guest guest_nice",
)


def _times(busy: float, idle: float, steal: float, guest: float = 0.0) -> CpuTimes:
    return CpuTimes(busy, 0.0, 0.0, idle, 0.0, 0.0, 0.0, steal, guest, 0.0)


def _scripted(monkeypatch: pytest.MonkeyPatch, *snapshots: CpuTimes) -> None:
    queue: Iterator[CpuTimes] = iter(snapshots)
    monkeypatch.setattr(measure.psutil, "cpu_times", lambda: next(queue))


def test_steal_is_the_share_of_all_time_the_host_took(monkeypatch: pytest.MonkeyPatch) -> None:
    # Over the block: 120 s busy (of which 50 s guest, already in user),
    # 70 s idle, 10 s stolen: 10 of 200 s.
    _scripted(monkeypatch, _times(100, 500, 3), _times(220, 570, 13, guest=50))
    with host_steal() as steal:
        pass
    assert steal.percent == pytest.approx(5.0)


def test_no_time_passed_reads_as_no_steal(monkeypatch: pytest.MonkeyPatch) -> None:
    same = _times(100, 500, 3)
    _scripted(monkeypatch, same, same)
    with host_steal() as steal:
        pass
    assert steal.percent == 0.0


def _opened(p50: float, p99: float, steal: float) -> OpenLoop:
    return OpenLoop(rate=300, achieved=300, sent=1500, p50_ms=p50, p99_ms=p99, max_ms=p99 * 2,
                    errors=0, steal_percent=steal)  # fmt: skip


def test_the_report_shows_steal_beside_the_overhead_it_may_explain(tmp_path: Path) -> None:
    closed = ClosedLoop(rps=600, requests=3000, errors=0)
    usage = Usage(cpu_seconds=5, wall_seconds=5)
    lookup = Result(LOOKUP_PG_ROW, "direct: REST connector", closed,
                    _opened(3.6, 34.2, steal=6.4), usage, usage)  # fmt: skip
    direct = Result("direct: REST connector", "baseline: Starlette JSON", closed,
                    _opened(1.5, 4.9, steal=0.0), usage, usage,
                    paired={LOOKUP_PG_ROW: _opened(1.9, 3.9, steal=0.2)})  # fmt: skip
    report = write_report([lookup, direct], tmp_path, 5, None).read_text()
    overhead = next(line for line in report.splitlines() if "LOOKUP on PostgreSQL" in line)
    assert "host steal 6.4 % vs 0.2 %" in overhead
    assert "**not met**" in overhead  # reported beside the target, never excusing it
    row = next(line for line in report.splitlines() if line.startswith(f"| {LOOKUP_PG_ROW} |"))
    assert "| 6.4 |" in row
