"""All thirteen agency simulators on loopback ports, for a test's lifetime."""

from __future__ import annotations

import contextlib
import errno
from collections.abc import AsyncIterator
from pathlib import Path

from gateway.catalog.loader import Catalog
from legacy.base import Simulator
from legacy.topology import build_simulators
from tests.support.gateway import free_port

ATTEMPTS = 3


@contextlib.asynccontextmanager
async def running_simulators(
    catalog: Catalog, workdir: Path, review_seconds: float = 3.0
) -> AsyncIterator[tuple[list[Simulator], list[int]]]:
    """The simulators, started, and their ports; every one started is stopped
    on the way out, also when a later one failed to start.

    A port ``free_port`` found can be taken before the simulator binds it (an
    outgoing connection's ephemeral port, from the same range): the whole set
    is then started again on fresh ports, a few times at most."""
    for attempt in range(1, ATTEMPTS + 1):
        ports = [free_port() for _ in catalog.agencies]
        simulators = build_simulators(catalog, workdir, ports, review_seconds)
        started: list[Simulator] = []
        try:
            for simulator in simulators:
                await simulator.start()
                started.append(simulator)
        except OSError as error:
            for simulator in started:
                await simulator.stop()
            if error.errno != errno.EADDRINUSE or attempt == ATTEMPTS:
                raise
            continue
        try:
            yield simulators, ports
        finally:
            for simulator in started:
                await simulator.stop()
        return
