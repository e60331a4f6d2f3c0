"""Engine and session factory for SQLite (default) or PostgreSQL."""

from __future__ import annotations

import asyncio
import contextlib
import sqlite3
import time
from collections.abc import AsyncIterator, Mapping
from pathlib import Path
from typing import Any, cast

from sqlalchemy import event, exc
from sqlalchemy.engine import Engine, make_url
from sqlalchemy.ext.asyncio import (
    AsyncConnection,
    AsyncEngine,
    async_sessionmaker,
    create_async_engine,
)
from sqlalchemy.ext.asyncio import AsyncSession as AsyncSession
from sqlalchemy.pool import ConnectionPoolEntry

from gateway.db.plain import PlainConnection

# A connection used this recently is taken as alive without a ping.
PING_AFTER_IDLE = 5.0
# No overflow: connections opened for a burst and closed after it were opened
# dozens of times a second under load. Each cost a new aiosqlite thread or a
# PostgreSQL login, and their churn left glibc's heap holding twice the free
# space after a 10-minute soak (docs/performance-history.md). Waiting for one of these
# is cheaper than opening another.
# SQLite gets fewer: its writers take turns anyway, and each connection keeps
# a page cache of its own.
SQLITE_POOL: dict[str, Any] = {"pool_size": 10, "max_overflow": 0}
SERVER_POOL: dict[str, Any] = {"pool_size": 20, "max_overflow": 0}


def _sqlite_pragmas(dbapi_connection: Any, _record: Any) -> None:
    # WAL lets readers proceed while the delivery worker writes; the busy
    # timeout turns short lock waits into waits instead of errors.
    cursor = dbapi_connection.cursor()
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA busy_timeout=10000")
    cursor.execute("PRAGMA foreign_keys=ON")
    cursor.close()


def create_engine(url: str) -> AsyncEngine:
    # hide_parameters: SQLAlchemy errors otherwise quote the statement's
    # parameters, which hold register numbers and form values, into any log.
    parsed = make_url(url)
    if parsed.get_backend_name() == "sqlite":
        if parsed.database:
            Path(parsed.database).parent.mkdir(parents=True, exist_ok=True)
        pool = {} if _in_memory(parsed.database, parsed.query) else SQLITE_POOL
        engine = create_async_engine(url, hide_parameters=True, **pool)
        event.listen(engine.sync_engine, "connect", _sqlite_pragmas)
        return engine
    engine = create_async_engine(url, hide_parameters=True, **SERVER_POOL)
    _ping_when_idle(engine.sync_engine)
    return engine


def sqlite_file(engine: AsyncEngine) -> str | None:
    """The file of ``engine``'s SQLite database; None for PostgreSQL or an
    in-memory database (which another connection could not see)."""
    database = engine.url.database
    if engine.dialect.name != "sqlite" or _in_memory(database, engine.url.query):
        return None
    return database


def _in_memory(database: str | None, query: Mapping[str, Any]) -> bool:
    # SQLAlchemy gives such a database one shared connection, not a pool.
    return not database or database == ":memory:" or query.get("mode") == "memory"


def sqlite_inline_connection(engine: AsyncEngine) -> PlainConnection:
    """A plain connection to ``engine``'s SQLite database, for short writes
    made on the event loop itself (auth/audit/sqlite_inline.py): it never
    waits for a lock and never copies the WAL into the database."""
    database = sqlite_file(engine)
    assert database is not None
    # Its COMMIT runs in the writer's thread, one statement at a time.
    raw = sqlite3.connect(database, isolation_level=None, check_same_thread=False)
    _sqlite_pragmas(raw, None)
    raw.execute("PRAGMA busy_timeout=0")
    raw.execute("PRAGMA wal_autocheckpoint=0")
    return PlainConnection(raw, engine.url)


def _ping_when_idle(engine: Engine) -> None:
    """``pool_pre_ping``, but only for a connection idle for a while.

    On asyncpg a pre-ping is three round trips (BEGIN, an empty query,
    ROLLBACK) on every checkout: more than a lone access-log row's own
    statement. A connection checked in moments ago is almost certainly
    alive, and one that is not (the server restarted in between) fails
    its statement as a disconnect, which invalidates the whole pool."""

    @event.listens_for(engine, "connect")
    @event.listens_for(engine, "checkin")
    def checkin(_dbapi_connection: Any, record: ConnectionPoolEntry) -> None:
        record.info["idle_since"] = time.monotonic()

    @event.listens_for(engine, "checkout")
    def checkout(dbapi_connection: Any, record: ConnectionPoolEntry, _proxy: Any) -> None:
        since = record.info.get("idle_since")
        if since is not None and time.monotonic() - since < PING_AFTER_IDLE:
            return
        try:
            engine.dialect.do_ping(dbapi_connection)
        except Exception as error:
            # The pool discards this connection and checks out another.
            raise exc.DisconnectionError("stale pooled connection") from error


class SerialWriters(async_sessionmaker[AsyncSession]):
    """SQLite sessions whose write transactions (``begin()``) take turns.

    SQLite has one write lock per database, and a writer waiting for it is
    left to the busy handler, which sleeps and retries with no queue: under
    load (20 deliveries, the status loop and group commits writing side by
    side) one writer can lose every race until its busy timeout runs out and
    a citizen's submission fails with "database is locked". An in-process
    FIFO lock makes the wait fair; the busy timeout stays as the backstop
    for other processes (the CLI, a separate worker). Reads (``__call__``)
    do not queue: WAL lets them run beside the writer.
    """

    def __init__(self, engine: AsyncEngine) -> None:
        super().__init__(engine, expire_on_commit=False)
        self.turn = asyncio.Lock()

    @contextlib.asynccontextmanager
    async def begin(self) -> AsyncIterator[AsyncSession]:  # type: ignore[override]
        # Callers only ever use begin() as an async context manager, which
        # this is; the base class's concrete return type is private.
        async with self.turn, super().begin() as session:
            yield session


@contextlib.asynccontextmanager
async def write_transaction(
    sessions: async_sessionmaker[AsyncSession],
) -> AsyncIterator[AsyncConnection]:
    """A Core connection in a write transaction of ``sessions``' engine,
    taking its turn among SQLite writers as ``sessions.begin()`` does:
    for a few statements the ORM session's own bookkeeping costs more than
    they do."""
    turn = sessions.turn if isinstance(sessions, SerialWriters) else contextlib.nullcontext()
    async with turn, bound_engine(sessions).begin() as connection:
        yield connection


def bound_engine(sessions: async_sessionmaker[AsyncSession]) -> AsyncEngine:
    """The engine ``session_factory`` bound ``sessions`` to."""
    return cast(AsyncEngine, sessions.kw["bind"])


def session_factory(engine: AsyncEngine) -> async_sessionmaker[AsyncSession]:
    if engine.dialect.name == "sqlite":
        return SerialWriters(engine)
    return async_sessionmaker(engine, expire_on_commit=False)
