"""Bursts of concurrent work reuse the pools' database connections.

Opening a connection is dear: on SQLite a new aiosqlite thread, the file
opened and its schema read again; on PostgreSQL a server process forked and a
login. Pools that opened extra connections for a burst and closed them after
did so dozens of times a second under load, and left the C heap holding twice
the free space (docs/performance-history.md). So a burst larger than a pool waits its
turn for a connection instead.
"""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

from sqlalchemy import event, text
from sqlalchemy.ext.asyncio import AsyncEngine
from sqlalchemy.pool import Pool

from connectors.base import BackendResponse
from connectors.sql import SqlConnector
from gateway.catalog.model import ServiceKind
from gateway.db.engine import create_engine
from legacy.samples import CITIZENS
from legacy.sql import SqlSimulator
from tests.support.sql_agency import FAST, lookup, make_agency, payload_for, service

BURST = 40  # more than any pool holds


class Opened:
    """Counts every database connection any pool in this process opens."""

    def __init__(self) -> None:
        self.count = 0

    def __call__(self, _dbapi_connection: Any, _record: Any) -> None:
        self.count += 1

    def __enter__(self) -> Opened:
        event.listen(Pool, "connect", self)
        return self

    def __exit__(self, *_: object) -> None:
        event.remove(Pool, "connect", self)


async def _burst_of_reads(engine: AsyncEngine) -> None:
    async def read() -> None:
        async with engine.connect() as connection:
            await connection.execute(text("SELECT 1"))
            await asyncio.sleep(0.005)  # all of them hold a connection at once

    await asyncio.gather(*(read() for _ in range(BURST)))


async def test_the_gateway_store_opens_no_connection_after_the_first_burst(
    database_url: str,
) -> None:
    engine = create_engine(database_url)
    try:
        with Opened() as opened:
            await _burst_of_reads(engine)
            first = opened.count
            for _ in range(3):
                await _burst_of_reads(engine)
        assert 0 < first < BURST
        assert opened.count == first
    finally:
        await engine.dispose()


async def test_the_sql_connector_opens_no_connection_after_the_first_burst(
    tmp_path: Path,
) -> None:
    agency = make_agency("POOL")
    sim = SqlSimulator(agency, tmp_path / "prop", 0)
    await sim.start()
    connector = SqlConnector(agency, sim.endpoint(), FAST)
    svc = service(agency, ServiceKind.LOOKUP)
    request = lookup(agency, payload_for(svc, CITIZENS[0]))

    async def burst() -> list[BackendResponse]:
        return await asyncio.gather(*(connector.send(request) for _ in range(BURST)))

    try:
        with Opened() as opened:
            answers = await burst()
            first = opened.count
            for _ in range(3):
                answers += await burst()
        assert all(answer.data for answer in answers)
        assert 0 < first < BURST
        assert opened.count == first
    finally:
        await connector.aclose()
        await sim.stop()
