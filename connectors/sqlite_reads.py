"""A SQL agency's LOOKUPs on SQLite: one trip to aiosqlite's thread, on
connections kept out of the pool.

Why not the engine, as for filings and status reads: aiosqlite hands every
DBAPI step to its connection's thread and back, and through the engine a
lookup took five such trips (cursor, execute, fetch, close, and the pool's
rollback at check-in), besides the pool's checkout and check-in in
greenlets: 500-750 µs of CPU for a query that costs ~50 µs, on the core the
event loop runs on, and every trip woke the loop. A fan-out pays it beside
its other legs. Here the statement, compiled once per shape, runs as one
``execute_fetchall`` on an aiosqlite connection borrowed from the engine's
pool and kept: one trip, ~50-60 µs (docs/performance-history.md). The values go
through the column types' own bind and result processors, as SQLAlchemy
would apply them (dates as ISO text, ``Numeric`` as ``Decimal``).

At most ``keep`` connections are kept; a lookup that finds none idle borrows
one from the pool for the call, so the pool, shared with filings, is never
held to its last connection. A connection whose call failed or was cut off
goes back to the pool, and so does one kept longer than the pool's
``recycle`` time, which the pool would have replaced by then. sqlite3's
errors leave as SQLAlchemy's, as the engine would raise them, so the
connector's error boundary reads them the same way.
"""

from __future__ import annotations

import asyncio
import sqlite3
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from sqlalchemy import CompoundSelect, Select
from sqlalchemy import exc as sa_exc
from sqlalchemy.engine import Dialect
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

_Processor = Callable[[Any], Any] | None


@dataclass(frozen=True, slots=True)
class SqliteStatement:
    """A SELECT compiled for SQLite, with its bind and result processors."""

    sql: str
    names: tuple[str, ...]
    """The bind parameters' names, in the order of the ``?`` marks."""
    fixed: Mapping[str, Any]
    """Values the statement carries itself (its LIMIT)."""
    binds: tuple[_Processor, ...]
    results: tuple[_Processor, ...]

    @classmethod
    def compile(
        cls, statement: Select[Any] | CompoundSelect[Any], dialect: Dialect
    ) -> SqliteStatement:
        compiled = statement.compile(dialect=dialect)
        names = tuple(compiled.positiontup or ())
        return cls(
            sql=str(compiled),
            names=names,
            fixed=compiled.params,
            binds=tuple(
                compiled.binds[name].type.dialect_impl(dialect).bind_processor(dialect)
                for name in names
            ),
            results=tuple(
                column.type.dialect_impl(dialect).result_processor(dialect, None)
                for column in statement.selected_columns
            ),
        )

    def parameters(self, values: Mapping[str, Any]) -> list[Any]:
        ordered = [values[name] if name in values else self.fixed[name] for name in self.names]
        return [
            value if process is None or value is None else process(value)
            for process, value in zip(self.binds, ordered, strict=True)
        ]

    def row(self, raw: Sequence[Any]) -> tuple[Any, ...]:
        return tuple(
            value if process is None else process(value)
            for process, value in zip(self.results, raw, strict=True)
        )


@dataclass(slots=True)
class _Borrowed:
    connection: AsyncConnection
    driver: Any  # aiosqlite.Connection (its execute_fetchall is not typed for us)
    since: float


class SqliteReads:
    def __init__(self, engine: AsyncEngine, keep: int, recycle: float) -> None:
        self._engine = engine
        self._keep = keep
        self._recycle = recycle
        self._idle: list[_Borrowed] = []
        self._kept = 0
        self._closed = False

    async def fetch(self, statement: SqliteStatement, values: Mapping[str, Any]) -> list[Any]:
        """The statement's rows, processed; raises SQLAlchemy's ``DBAPIError``."""
        return [statement.row(row) for row in await self.fetch_raw(statement, values)]

    async def fetch_raw(
        self, statement: SqliteStatement, values: Mapping[str, Any]
    ) -> list[Sequence[Any]]:
        """The rows as sqlite3 gives them, for a caller that processes each
        (``statement.row``) on its own: a batch's junk value fails its row only."""
        parameters = statement.parameters(values)
        borrowed, kept = (self._idle.pop(), True) if self._idle else (await self._borrow(), False)
        if not kept and self._kept < self._keep and not self._closed:
            self._kept += 1
            kept = True
        try:
            rows = await borrowed.driver.execute_fetchall(statement.sql, parameters)
        except BaseException as exc:
            if kept:
                self._kept -= 1
            # Shielded: the connection is the thread's until its call is done.
            await asyncio.shield(borrowed.connection.close())
            if isinstance(exc, sqlite3.Error):
                raise sa_exc.DBAPIError.instance(
                    statement.sql, None, exc, sqlite3.Error, hide_parameters=True,
                    dialect=self._engine.dialect,
                ) from exc  # fmt: skip
            raise
        if kept and (self._closed or time.monotonic() - borrowed.since > self._recycle):
            self._kept -= 1
            kept = False
        if kept:
            self._idle.append(borrowed)
        else:
            await borrowed.connection.close()
        return list(rows)

    async def _borrow(self) -> _Borrowed:
        connection = await self._engine.connect()
        try:
            raw = await connection.get_raw_connection()
        except BaseException:
            await connection.close()
            raise
        return _Borrowed(connection, raw.driver_connection, time.monotonic())

    async def aclose(self) -> None:
        self._closed = True
        idle, self._idle = self._idle, []
        for borrowed in idle:
            await borrowed.connection.close()
