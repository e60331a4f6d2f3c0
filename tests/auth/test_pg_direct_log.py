"""The resolvers' access rows on PostgreSQL, on a driver connection of their
own (auth/audit/pg_direct.py): they form one chain with every other writer,
in this process or another, the metrics hear which path wrote each group of
rows, a server that dropped the connection costs at most the one commit that
was using it (and says "try again", not "bug"), and an idle connection is
never trusted without a check."""

from __future__ import annotations

from collections.abc import AsyncIterator

import asyncpg
import pytest
from graphql import GraphQLError
from sqlalchemy import exc as sa_exc
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from auth.audit import chain, pg_direct
from auth.audit.record import AccessLog, WrittenBy, record
from auth.audit.verify import verify
from gateway.clock import utcnow
from gateway.db.engine import bound_engine, create_engine, session_factory
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


async def append_elsewhere(sessions: async_sessionmaker[AsyncSession], database: str) -> None:
    """Append a row as another process would: this one's guess of the head is left as it was."""
    connection = await asyncpg.connect(f"{PG_ADMIN.rsplit('/', 1)[0]}/{database}", timeout=5)
    try:
        length, last = await connection.fetchrow("SELECT length, last_hash FROM access_chain_head")
        rows = chain.linked_after((length, last), [lookup_access(99)], utcnow())
        parameters = chain.swap_pg_parameters((length, last), rows)
        compiled = chain.SWAP_PG.compile(dialect=bound_engine(sessions).dialect)
        assert compiled.positiontup is not None
        await connection.execute(compiled.string, *(parameters[n] for n in compiled.positiontup))
    finally:
        await connection.close()


async def test_rows_after_the_first_take_the_direct_path_and_chain_with_others(
    sessions: async_sessionmaker[AsyncSession], database: tuple[str, str]
) -> None:
    log = AccessLog(sessions)
    try:
        await log.record(lookup_access(0))  # no head known yet: the engine's path
        await log.record(lookup_access(1))
        assert log._direct is not None and log._direct._borrowed is not None
        await record(sessions, lookup_access(2))  # another writer of this process
        await append_elsewhere(sessions, database[0])  # and one of another process
        await log.record(lookup_access(3))  # stale guess: nothing written, then the engine's path
        await log.record(lookup_access(4), lookup_access(5))
    finally:
        await log.aclose()
    verdict = await verify(sessions)
    assert verdict.ok, verdict
    assert verdict.checked == 7


class Observed:
    """What ``AccessLog`` tells its observer (the metrics)."""

    def __init__(self) -> None:
        self.writes: list[tuple[str, int]] = []
        self.waits = 0

    def access_rows_written(self, path: WrittenBy, rows: int, seconds: float) -> None:
        assert seconds > 0
        self.writes.append((path, rows))

    def access_rows_waited(self, seconds: float) -> None:
        assert seconds > 0
        self.waits += 1


async def test_the_observer_is_told_which_path_wrote_each_group(
    sessions: async_sessionmaker[AsyncSession], database: tuple[str, str]
) -> None:
    log, observed = AccessLog(sessions), Observed()
    log.observer = observed
    try:
        await log.record(lookup_access(0))  # no head known yet
        await log.record(lookup_access(1))
        await append_elsewhere(sessions, database[0])
        await log.record(lookup_access(3), lookup_access(4))  # stale guess
        await log.record(lookup_access(5))
    finally:
        await log.aclose()
    assert observed.writes == [("engine", 1), ("direct", 1), ("engine", 2), ("direct", 1)]
    assert observed.waits == 4
    verdict = await verify(sessions)
    assert verdict.ok and verdict.checked == 6


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
