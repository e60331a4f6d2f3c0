"""The resolvers' access rows on PostgreSQL, on a driver connection of their
own (auth/audit/pg_direct.py): they form one chain with every other writer,
a server that dropped the connection costs at most the one commit that was
using it (and says "try again", not "bug"), and an idle connection is never
trusted without a check."""

from __future__ import annotations

from collections.abc import AsyncIterator

import asyncpg
import pytest
from graphql import GraphQLError
from sqlalchemy import exc as sa_exc
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from auth.audit import pg_direct
from auth.audit.record import AccessLog, record
from auth.audit.verify import verify
from gateway.db.engine import create_engine, session_factory
from gateway.db.migrate import upgrade_async
from schema.store_errors import is_store_unavailable
from tests.auth.conftest import lookup_access
from tests.conftest import PG_ADMIN, _drop_postgres, _postgres_database

pytestmark = pytest.mark.postgres


@pytest.fixture
async def database() -> AsyncIterator[tuple[str, str]]:
    name, url = await _postgres_database()
    try:
        await upgrade_async(url)
        yield name, url
    finally:
        await _drop_postgres(name)


@pytest.fixture
async def sessions(database: tuple[str, str]) -> AsyncIterator[async_sessionmaker[AsyncSession]]:
    engine = create_engine(database[1])
    yield session_factory(engine)
    await engine.dispose()


async def drop_connections(database: str) -> int:
    """What a server restart does to every connection of ``database``."""
    admin = await asyncpg.connect(PG_ADMIN, timeout=5)
    try:
        return len(
            await admin.fetch(
                "SELECT pg_terminate_backend(pid) FROM pg_stat_activity"
                " WHERE datname = $1 AND pid <> pg_backend_pid()",
                database,
            )
        )
    finally:
        await admin.close()


async def test_rows_after_the_first_take_the_direct_path_and_chain_with_others(
    sessions: async_sessionmaker[AsyncSession],
) -> None:
    log = AccessLog(sessions)
    try:
        await log.record(lookup_access(0))  # no head known yet: the engine's path
        await log.record(lookup_access(1))
        assert log._direct is not None and log._direct._borrowed is not None
        await record(sessions, lookup_access(2))  # another writer moves the head
        await log.record(lookup_access(3))  # stale guess: nothing written, then the engine's path
        await log.record(lookup_access(4), lookup_access(5))
    finally:
        await log.aclose()
    verdict = await verify(sessions)
    assert verdict.ok, verdict
    assert verdict.checked == 6


async def test_a_dropped_connection_fails_one_commit_as_unavailable_and_not_the_next(
    sessions: async_sessionmaker[AsyncSession], database: tuple[str, str]
) -> None:
    log = AccessLog(sessions)
    try:
        await log.record(lookup_access(0))
        await log.record(lookup_access(1))
        assert await drop_connections(database[0]) >= 1
        with pytest.raises(sa_exc.DBAPIError) as failed:
            await log.record(lookup_access(2))
        assert is_store_unavailable(GraphQLError("x", original_error=failed.value))
        await log.record(lookup_access(3))
    finally:
        await log.aclose()
    verdict = await verify(sessions)
    assert verdict.ok, verdict
    assert verdict.checked == 3  # the failed row was not written


async def test_an_idle_connection_is_replaced_before_use(
    sessions: async_sessionmaker[AsyncSession],
    database: tuple[str, str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(pg_direct, "PING_AFTER_IDLE", 0.0)  # every commit comes after idling
    log = AccessLog(sessions)
    try:
        await log.record(lookup_access(0))
        await log.record(lookup_access(1))
        assert await drop_connections(database[0]) >= 1
        await log.record(lookup_access(2))  # the server restarted meanwhile: nobody notices
    finally:
        await log.aclose()
    verdict = await verify(sessions)
    assert verdict.ok and verdict.checked == 3
