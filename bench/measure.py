"""CPU and peak RSS of the server process while a load runs."""

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
    samples: list[float] = field(default_factory=list)

    @property
    def cpu_percent(self) -> float:
        """Of one core: 100 means the server's one core was busy all the time."""
        return 100 * self.cpu_seconds / self.wall_seconds if self.wall_seconds else 0.0


@contextmanager
def server_usage(pid: int, interval: float = 0.05) -> Iterator[Usage]:
    process = psutil.Process(pid)
    usage = Usage()
    stop = threading.Event()

    def sample() -> None:
        while not stop.is_set():
            usage.samples.append(process.memory_info().rss / 2**20)
            stop.wait(interval)

    sampler = threading.Thread(target=sample, daemon=True)
    before = process.cpu_times()
    started = time.perf_counter()
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
