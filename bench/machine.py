"""How fast this machine runs Python on the server core: a fixed unit of
work timed back to back, and timed again when the core has slept before
each unit, as it does between the requests of a fixed moderate rate.

Why the report carries it: this kind of machine is a virtual one whose
speed changes from one session to the next (the same code's CPU per
request has differed 2.5 times between sessions), and on it a unit of
Python work that follows a few milliseconds of sleep costs about twice
what it costs back to back (28 November: 273-277 µs against 573-594 µs).
Spinning instead of sleeping kept it near the back-to-back cost, and so
did a spinning process at idle priority on the same core: the cost is the
core's idle spell, in which the host runs other work there, not the code.
That is why every server's ``CPU ms/req`` at ½ peak is well above its
saturated figure, and a latency target in milliseconds can be met on one
machine and missed on the next by the same code.

``python -m bench.machine`` prints one measurement as JSON; run it pinned
to the core to probe (``probe``).
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import re
import statistics
import subprocess
import sys
import time
from collections.abc import Callable

import orjson

IDLE_GAP = 0.005  # s: about the spacing of requests at a few hundred per second
UNITS = 300

_DOCUMENT = [
    {"id": i, "name": f"агентлаг-{i}", "at": f"2026-11-{i % 28 + 1:02d}", "values": list(range(12))}
    for i in range(40)
]
_DATE = re.compile(r"(\d{4})-(\d{2})-(\d{2})")


def work_unit() -> int:
    """A fixed mix of what a request does: JSON both ways, a regex, a
    hash, small dicts and strings. Its own figure means nothing; its cost
    against the same machine's, and against another machine's, does."""
    text = json.dumps(_DOCUMENT, ensure_ascii=False)
    total = 0
    for item in orjson.loads(orjson.dumps(json.loads(text))):
        match = _DATE.match(item["at"])
        assert match is not None
        total += int(match.group(3)) + sum(item["values"]) + len(f"{item['name']}:{item['id']}")
    total += len(hashlib.sha256(text.encode()).hexdigest())
    return total


def unit_cost(
    gap: float,
    units: int = UNITS,
    *,
    work: Callable[[], object] = work_unit,
    sleep: Callable[[float], None] = time.sleep,
    clock: Callable[[], float] = time.thread_time,
) -> float:
    """The median CPU time of one unit in µs, each unit after ``gap``
    seconds of sleep (none: back to back). CPU time, not wall time, so
    that a preemption in the middle of a unit is not counted."""
    costs = []
    for _ in range(units):
        if gap:
            sleep(gap)
        started = clock()
        work()
        costs.append(clock() - started)
    return statistics.median(costs) * 1e6


@dataclasses.dataclass(frozen=True)
class MachineSpeed:
    warm_us: float  # one unit, back to back
    after_idle_us: float  # one unit after the core slept ``gap_ms``
    gap_ms: float = IDLE_GAP * 1000

    @property
    def idle_penalty(self) -> float:
        """How many times a unit's back-to-back cost it costs after sleep."""
        return self.after_idle_us / self.warm_us if self.warm_us else 0.0

    def describe(self) -> str:
        return (
            f"{self.warm_us:,.0f} µs back to back, {self.after_idle_us:,.0f} µs after "
            f"{self.gap_ms:g} ms of sleep (×{self.idle_penalty:.1f})"
        )


def measure(units: int = UNITS) -> MachineSpeed:
    unit_cost(0, units // 10)  # imports, allocator, caches
    return MachineSpeed(unit_cost(0, units), unit_cost(IDLE_GAP, units))


def probe(cpu: int) -> MachineSpeed:
    """``measure`` in a process of its own pinned to ``cpu``."""
    command = ["taskset", "-c", str(cpu), sys.executable, "-m", "bench.machine"]
    out = subprocess.run(command, check=True, capture_output=True, text=True).stdout
    return MachineSpeed(**json.loads(out))


if __name__ == "__main__":
    print(json.dumps(dataclasses.asdict(measure())))
