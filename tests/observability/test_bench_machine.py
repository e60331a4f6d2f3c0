"""The harness records how fast the server core runs Python, back to back
and after sleep, so a report from a slow or idle-penalised machine says so
(bench/machine.py)."""

from __future__ import annotations

import itertools
from pathlib import Path

import pytest

from bench.loadgen import ClosedLoop, OpenLoop
from bench.machine import MachineSpeed, probe, unit_cost
from bench.measure import Usage
from bench.report import Result, write_report


def test_a_unit_costs_its_median_cpu_time_each_after_the_gap() -> None:
    # CPU clock readings around each unit: 100, 300 and 200 µs.
    readings = iter([0.0, 100e-6, 1.0, 1.0 + 300e-6, 2.0, 2.0 + 200e-6])
    slept: list[float] = []
    cost = unit_cost(0.005, 3, work=lambda: None, sleep=slept.append, clock=lambda: next(readings))
    assert cost == pytest.approx(200)
    assert slept == [0.005] * 3


def test_back_to_back_units_do_not_sleep() -> None:
    ticks = itertools.count()
    slept: list[float] = []
    unit_cost(0, 4, work=lambda: None, sleep=slept.append, clock=lambda: next(ticks) * 1e-6)
    assert slept == []


def test_the_penalty_is_the_cost_after_sleep_over_the_cost_back_to_back() -> None:
    speed = MachineSpeed(warm_us=250, after_idle_us=550)
    assert speed.idle_penalty == pytest.approx(2.2)
    assert speed.describe() == "250 µs back to back, 550 µs after 5 ms of sleep (×2.2)"


def test_the_probe_measures_on_the_core_it_is_given() -> None:
    speed = probe(0)
    assert 0 < speed.warm_us < 1e6
    assert 0 < speed.after_idle_us < 1e6


def test_the_report_states_the_machine_at_both_ends_of_the_run(tmp_path: Path) -> None:
    usage = Usage(cpu_seconds=5, wall_seconds=5)
    opened = OpenLoop(rate=300, achieved=300, sent=1500, p50_ms=1, p99_ms=2, max_ms=3, errors=0)
    row = Result("baseline: Starlette JSON", "baseline: Starlette JSON",
                 ClosedLoop(rps=600, requests=3000, errors=0), opened, usage, usage)  # fmt: skip
    machine = [MachineSpeed(230, 500), MachineSpeed(260, 480)]
    report = write_report([row], tmp_path, 5, None, machine=machine).read_text()
    line = next(line for line in report.splitlines() if line.startswith("Python on the server"))
    assert "230 µs back to back, 500 µs after 5 ms of sleep (×2.2) at the start" in line
    assert "260 µs back to back, 480 µs after 5 ms of sleep (×1.8) at its end" in line
