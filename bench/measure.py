"""CPU and peak RSS of the server process while a load runs, and the CPU
time the host took from this machine meanwhile."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field

import psutil  # type: ignore[import-untyped]


@dataclass
class Usage:
    cpu_seconds: float = 0.0
    wall_seconds: float = 0.0
    peak_rss_mb: float = 0.0
    samples: list[float] = field(default_factory=list)  # RSS MB, every ``interval``
    times: list[float] = field(default_factory=list)  # seconds since the start, per sample

    @property
    def cpu_percent(self) -> float:
        """Of one core: 100 means the server's one core was busy all the time."""
        return 100 * self.cpu_seconds / self.wall_seconds if self.wall_seconds else 0.0

    def add(self, other: Usage) -> Usage:
        """Two processes measured over the same time (a multi-process run)."""
        return Usage(
            cpu_seconds=self.cpu_seconds + other.cpu_seconds,
            wall_seconds=max(self.wall_seconds, other.wall_seconds),
            peak_rss_mb=self.peak_rss_mb + other.peak_rss_mb,
        )


@contextmanager
def server_usage(pid: int, interval: float = 0.05) -> Iterator[Usage]:
    process = psutil.Process(pid)
    usage = Usage()
    stop = threading.Event()
    started = time.perf_counter()

    def sample() -> None:
        while not stop.is_set():
            usage.samples.append(process.memory_info().rss / 2**20)
            usage.times.append(time.perf_counter() - started)
            stop.wait(interval)

    sampler = threading.Thread(target=sample, daemon=True)
    before = process.cpu_times()
    sampler.start()
    try:
        yield usage
    finally:
        stop.set()
        sampler.join()
        after = process.cpu_times()
        usage.wall_seconds = time.perf_counter() - started
        usage.cpu_seconds = (after.user - before.user) + (after.system - before.system)
        usage.peak_rss_mb = max(usage.samples, default=0.0)


@dataclass
class Steal:
    percent: float = 0.0  # of all cores' time


@contextmanager
def host_steal() -> Iterator[Steal]:
    """The share of this virtual machine's CPU time that its host gave to
    others while the block ran (the kernel's ``steal``, as vmstat's ``st``).

    Why the report carries it: in a run on 28 November, the PostgreSQL
    LOOKUP's ½-peak window fell in a half-minute episode in which the host
    took 3-12 % of both cores, against at most 2 % in nearly every other
    second of the run; its slow requests came in bursts of up to 54 ms
    within that episode. Nothing in the server showed such a pause, and
    nothing of this kind is visible from inside the guest but this counter."""
    steal = Steal()
    before = psutil.cpu_times()
    try:
        yield steal
    finally:
        after = psutil.cpu_times()
        # Linux counts guest time inside user time: the first eight fields
        # (user to steal) add up to all the time there was.
        total = sum(after[:8]) - sum(before[:8])
        stolen = getattr(after, "steal", 0.0) - getattr(before, "steal", 0.0)
        steal.percent = 100 * stolen / total if total > 0 else 0.0
