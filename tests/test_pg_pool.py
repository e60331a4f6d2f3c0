"""Pooled PostgreSQL connections that the server closed behind our back
(a restart, a failover, an idle timeout): the gateway pings a connection
that sat idle before handing it out, and a recently used one that turns
out dead costs one failed statement, never the pool."""

from __future__ import annotations

from collections.abc import AsyncIterator

import asyncpg
import pytest
from sqlalchemy import text
from sqlalchemy.exc import DBAPIError

from gateway.db import engine as engine_module
from gateway.db.engine import create_engine
from tests.conftest import PG_ADMIN, _drop_postgres, _postgres_database

pytestmark = pytest.mark.postgres

BACKEND_PID = text("SELECT pg_backend_pid()")


@pytest.fixture
async def pg_url() -> AsyncIterator[str]:
    name, url = await _postgres_database()
    try:
        yield url
    finally:
        await _drop_postgres(name)


async def _terminate(pid: int) -> None:
    admin = await asyncpg.connect(PG_ADMIN, timeout=5)
    try:
        assert await admin.fetchval("SELECT pg_terminate_backend($1)", pid)
    finally:
        await admin.close()


async def test_an_idle_connection_the_server_closed_is_replaced_before_use(
    pg_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(engine_module, "PING_AFTER_IDLE", 0.0)  # every checkout counts as idle
    engine = create_engine(pg_url)
    try:
        async with engine.connect() as connection:
            first = (await connection.execute(BACKEND_PID)).scalar_one()
        await _terminate(first)
        async with engine.connect() as connection:
            second = (await connection.execute(BACKEND_PID)).scalar_one()
        assert second != first
    finally:
        await engine.dispose()


async def test_a_recently_used_dead_connection_fails_one_statement_then_the_pool_recovers(
    pg_url: str,
) -> None:
    engine = create_engine(pg_url)
    try:
        async with engine.connect() as connection:
            first = (await connection.execute(BACKEND_PID)).scalar_one()
        await _terminate(first)
        with pytest.raises(DBAPIError) as failure:
            async with engine.connect() as connection:
                await connection.execute(BACKEND_PID)
        # Classified as a lost connection (gateway/db/failures.py: UNAVAILABLE, retry).
        assert failure.value.connection_invalidated
        async with engine.connect() as connection:
            assert (await connection.execute(BACKEND_PID)).scalar_one() != first
    finally:
        await engine.dispose()
