"""Engine and session factory for SQLite (default) or PostgreSQL."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

from sqlalchemy import event
from sqlalchemy.engine import make_url
from sqlalchemy.ext.asyncio import AsyncEngine, async_sessionmaker, create_async_engine
from sqlalchemy.ext.asyncio import AsyncSession as AsyncSession


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
        engine = create_async_engine(url, hide_parameters=True)
        event.listen(engine.sync_engine, "connect", _sqlite_pragmas)
        return engine
    return create_async_engine(
        url, pool_size=10, max_overflow=20, pool_pre_ping=True, hide_parameters=True
    )


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
        self._turn = asyncio.Lock()

    @contextlib.asynccontextmanager
    async def begin(self) -> AsyncIterator[AsyncSession]:  # type: ignore[override]
        # Callers only ever use begin() as an async context manager, which
        # this is; the base class's concrete return type is private.
        async with self._turn, super().begin() as session:
            yield session


def session_factory(engine: AsyncEngine) -> async_sessionmaker[AsyncSession]:
    if engine.dialect.name == "sqlite":
        return SerialWriters(engine)
    return async_sessionmaker(engine, expire_on_commit=False)
