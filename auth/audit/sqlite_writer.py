"""The data-access log's commits on SQLite, each in one hop to a thread.

Why not the async engine, as everywhere else: aiosqlite sends every step of
a commit (checkout, the swap, the insert, the commit, the pool's reset) to
its thread and back, each wrapped by SQLAlchemy's async layer, and a
LOOKUP's lone row cost ~0.9 ms of CPU that way, a quarter of the whole
request. Here the same statements (``chain.append_sync``, the same tables
and type handling, through SQLAlchemy's plain SQLite driver) run whole in
one thread of the writer's own: ~0.2 ms. PostgreSQL needs none of this:
there a lone row is one statement in autocommit.

The process's SQLite writers still take turns (``SerialWriters.turn``),
and other processes are waited for by the busy timeout, as for any writer.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor

from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker

from auth.audit.chain import append_sync
from auth.audit.model import Access
from gateway.db.engine import SerialWriters, sqlite_sync_engine


class SqliteChainWriter:
    def __init__(self, sessions: async_sessionmaker[AsyncSession]) -> None:
        bind = sessions.kw["bind"]
        assert isinstance(bind, AsyncEngine)
        self._engine = sqlite_sync_engine(bind)
        self._turn = sessions.turn if isinstance(sessions, SerialWriters) else None
        # One thread: SQLite writes one at a time anyway, and its connection stays put.
        self._thread = ThreadPoolExecutor(max_workers=1, thread_name_prefix="khaalga-audit")

    async def commit(self, accesses: Sequence[Access], at: dt.datetime) -> None:
        turn = self._turn if self._turn is not None else contextlib.nullcontext()
        async with turn:
            await asyncio.get_running_loop().run_in_executor(
                self._thread, self._commit, accesses, at
            )

    def _commit(self, accesses: Sequence[Access], at: dt.datetime) -> None:
        with self._engine.begin() as connection:
            append_sync(connection, accesses, at)

    async def aclose(self) -> None:
        await asyncio.to_thread(self._thread.shutdown)
        self._engine.dispose()
