"""The resolvers' data-access rows on SQLite, written on the event loop.

Why not the async engine, as everywhere else: aiosqlite sends every step of
a commit (checkout, the swap, the insert, the commit, the pool's reset) to
its thread and back, eight hops, and a LOOKUP's lone row cost ~1.4 ms of
CPU that way, more than the rest of the request. A thread of our own doing
the whole commit in one hop was tried and reverted: its Python contended
with the event loop for the GIL on the one server core. Here the same
append (``chain.append_sync``) runs on the loop itself, on a plain
``sqlite3`` connection (``gateway/db/plain.py``: SQLAlchemy's statements,
compiled once): a lone append ~1,160 -> ~260 µs of CPU. Only the COMMIT,
which writes the WAL and waits for its fsync (0.2-0.5 ms on this machine's
disk), goes to a thread of its own: sqlite3 lets go of the GIL meanwhile, so
the loop serves the agency's answer while the disk flushes (the LOOKUP's
overhead at half peak, alternated bench runs: p50 +1.3 -> +1.1 ms).

The loop never waits for a lock or a checkpoint. The connection's busy
timeout is 0, so a commit that finds the
database locked (another process, or a writer of this one that does not
take its turn) changes nothing and returns False, and the caller takes the
async path, which waits. Checkpoints (copying the WAL into the database:
milliseconds) are off on this connection and run on the async engine's
thread every ``CHECKPOINT_EVERY`` commits. The process's writers still take
turns (``SerialWriters.turn``).

PostgreSQL needs none of this: there a lone row is one statement in
autocommit (``chain.commit_alone``).
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import sqlite3
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor

from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from auth.audit.chain import append_sync
from auth.audit.model import Access
from gateway.db.engine import SerialWriters, bound_engine, sqlite_inline_connection
from gateway.db.plain import PlainConnection

CHECKPOINT_EVERY = 500  # commits; a few hundred kB of WAL at a lookup's row size
_LOCKED = {sqlite3.SQLITE_BUSY, sqlite3.SQLITE_LOCKED}


class SqliteInlineWriter:
    def __init__(self, sessions: async_sessionmaker[AsyncSession]) -> None:
        self._async_engine = bound_engine(sessions)
        self._connection: PlainConnection | None = None
        self._turn = sessions.turn if isinstance(sessions, SerialWriters) else None
        self._commits = 0
        self._thread = ThreadPoolExecutor(max_workers=1, thread_name_prefix="khaalga-audit")
        self._checkpoint: asyncio.Task[None] | None = None

    async def commit(self, accesses: Sequence[Access], at: dt.datetime) -> bool:
        """Append and commit ``accesses``; False if the database was locked
        (nothing written)."""
        async with self._turn if self._turn is not None else contextlib.nullcontext():
            if self._connection is None:
                self._connection = sqlite_inline_connection(self._async_engine)
            raw = self._connection.raw
            committing: asyncio.Future[object] | None = None
            try:
                raw.execute("BEGIN")
                try:
                    append_sync(self._connection, accesses, at)
                    committing = asyncio.get_running_loop().run_in_executor(
                        self._thread, raw.execute, "COMMIT"
                    )
                    # Not cut short: the connection is the thread's until it is done.
                    await asyncio.shield(committing)
                except BaseException:
                    if raw.in_transaction and not _running(committing):
                        raw.execute("ROLLBACK")  # SQLite ends it itself after some errors
                    raise
            except sqlite3.OperationalError as error:
                if error.sqlite_errorcode in _LOCKED:
                    return False
                raise
        self._commits += 1
        if self._commits % CHECKPOINT_EVERY == 0 and (
            self._checkpoint is None or self._checkpoint.done()
        ):
            self._checkpoint = asyncio.create_task(self._copy_wal())
        return True

    async def _copy_wal(self) -> None:
        # PASSIVE: copies what no reader still needs, never blocks a writer.
        async with self._async_engine.connect() as connection:
            await connection.exec_driver_sql("PRAGMA wal_checkpoint(PASSIVE)")

    async def aclose(self) -> None:
        if self._checkpoint is not None:
            await self._checkpoint
        await asyncio.to_thread(self._thread.shutdown)  # a commit under way finishes
        if self._connection is not None:
            self._connection.raw.close()


def _running(future: asyncio.Future[object] | None) -> bool:
    return future is not None and not future.done()
