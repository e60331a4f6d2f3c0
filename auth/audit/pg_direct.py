"""The resolvers' data-access rows on PostgreSQL, on a driver connection of
their own.

Why not the async engine, as everywhere else: a LOOKUP's row is one
statement in autocommit (``chain.SWAP_PG``), yet through the engine it cost
~400 µs of CPU at 600 rows/s, more than three times the statement's own
round trip: pool checkout and checkin with their events, the execution
options, the greenlet hop, SQLAlchemy's execution context and result. The
same statement prepared once on asyncpg's own connection: ~244 µs
(docs/performance-history.md). The gateway's core is the one the event loop runs
on, so that CPU is every request's latency at half peak.

Like ``auth/audit/sqlite_inline.py`` this is only the fast path: when this
process has not written the head yet, or another process has moved it
since, ``commit`` writes nothing and returns False, and the caller takes
the engine's path, which takes the head's lock.

The connection is borrowed from the engine's pool (its credentials, TLS and
server settings) and kept: the resolvers' group commit
(``gateway/group_commit.py``) writes one batch at a time, so one connection
is enough. One left idle for longer than the pool would trust without a
ping (the server may have restarted meanwhile), or whose statement failed
or was cancelled half-way, is thrown away and another borrowed. The
driver's errors leave here as SQLAlchemy's, as the engine would raise them,
so the store's error boundary (schema/store_errors.py) still tells "try
again" from a bug.
"""

from __future__ import annotations

import datetime as dt
import time
from collections.abc import Sequence
from typing import Any

import asyncpg
from sqlalchemy import exc as sa_exc
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from auth.audit import chain
from auth.audit.model import Access
from gateway.db.engine import PING_AFTER_IDLE


class PostgresDirectWriter:
    def __init__(self, engine: AsyncEngine) -> None:
        self._engine = engine
        self._borrowed: AsyncConnection | None = None
        self._statement: Any = None  # asyncpg's PreparedStatement (untyped)
        self._names: tuple[str, ...] = ()
        self._used = 0.0
        self._broken = False

    async def commit(self, accesses: Sequence[Access], at: dt.datetime) -> bool:
        """Append and commit ``accesses``; False if this process's guess of
        the chain head is missing or stale (nothing written)."""
        seen = chain.known_head(self._engine.url)
        if seen is None:
            return False
        rows = chain.linked_after(seen, accesses, at)
        parameters = chain.swap_pg_parameters(seen, rows)
        try:
            statement = await self._prepared()
            self._broken = True  # until the statement is known to have finished
            await statement.fetch(*(parameters[name] for name in self._names))
        except (*_DRIVER_ERRORS, *_LOST) as error:
            raise _as_sqlalchemy(error) from error
        self._broken = False
        self._used = time.monotonic()
        # "INSERT 0 <rows>": none when the head had moved and the swap did nothing.
        swapped: bool = statement.get_statusmsg() == f"INSERT 0 {len(rows)}"
        chain.settle_swap(self._engine.url, rows, swapped)
        return swapped

    async def _prepared(self) -> Any:
        idle = time.monotonic() - self._used > PING_AFTER_IDLE
        if self._borrowed is not None and (self._broken or idle):
            await self._give_back(discard=True)
        if self._borrowed is None:
            self._borrowed = await self._engine.connect()
            self._broken = True  # until prepared: a failure leaves it to be thrown away
            driver = (await self._borrowed.get_raw_connection()).driver_connection
            assert driver is not None
            compiled = chain.SWAP_PG.compile(dialect=self._engine.dialect)
            assert compiled.positiontup is not None
            self._names = tuple(compiled.positiontup)
            self._statement = await driver.prepare(compiled.string)
            self._broken = False
        return self._statement

    async def _give_back(self, *, discard: bool) -> None:
        borrowed, self._borrowed, self._statement = self._borrowed, None, None
        if borrowed is None:
            return
        if discard:
            await borrowed.invalidate()
        await borrowed.close()

    async def aclose(self) -> None:
        await self._give_back(discard=self._broken)


# A connection the server closed shows as any of these, depending on when
# the driver noticed (one that was terminated between two statements raises
# InternalClientError, its protocol left mid-operation).
_LOST = (
    asyncpg.PostgresConnectionError,
    asyncpg.InterfaceError,
    asyncpg.exceptions.InternalClientError,
    OSError,
)
_DRIVER_ERRORS = (asyncpg.PostgresError,)


def _as_sqlalchemy(error: Exception) -> sa_exc.DBAPIError:
    # The statement's text only: its parameters hold register numbers.
    lost = isinstance(error, _LOST)
    kind = sa_exc.OperationalError if lost else sa_exc.DatabaseError
    return kind("the data-access row", None, error, connection_invalidated=lost)
