"""Core statements on a plain ``sqlite3`` connection, compiled once.

Why by hand: for the few statements of a data-access row's commit,
SQLAlchemy's per-execution work (cache key, execution context, result
wrapper, events) cost three times what SQLite spends on them, and that
commit runs on the event loop (auth/audit/sqlite_inline.py). Here each
statement is compiled by SQLAlchemy's own SQLite dialect once, with its
parameter order and the columns' bind processors (datetimes and JSON as the
async engine stores them), so both drivers write the same bytes.

Only what the chain's append uses: ``execute`` with one parameter set (or
a list of them: ``executemany``), ``rowcount`` and ``one_or_none``.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Callable, Mapping, Sequence
from typing import Any

from sqlalchemy import URL
from sqlalchemy.dialects import sqlite
from sqlalchemy.sql import Executable
from sqlalchemy.sql.compiler import SQLCompiler

_DIALECT = sqlite.dialect()  # pysqlite: qmark parameters


class _Compiled:
    def __init__(self, statement: Executable) -> None:
        compiled = statement.compile(dialect=_DIALECT)  # type: ignore[attr-defined]
        assert isinstance(compiled, SQLCompiler) and compiled.positiontup is not None
        self.sql = compiled.string
        self.names = tuple(compiled.positiontup)
        self.literals: dict[str, Any] = {}
        self.processors: dict[str, Callable[[Any], Any]] = {}
        for bind, name in compiled.bind_names.items():
            if not bind.required:
                self.literals[name] = bind.value  # such as the head's id
            # The dialect's own type (SQLite's DATETIME), as the engine does.
            processor = bind.type.dialect_impl(_DIALECT).bind_processor(_DIALECT)
            if processor is not None:
                self.processors[name] = processor

    def row(self, parameters: Mapping[str, Any]) -> tuple[Any, ...]:
        values = []
        for name in self.names:
            # A required parameter left out is a KeyError, not a NULL.
            value = parameters[name] if name in parameters else self.literals[name]
            processor = self.processors.get(name)
            values.append(value if processor is None else processor(value))
        return tuple(values)


class PlainResult:
    def __init__(self, cursor: sqlite3.Cursor) -> None:
        self.rowcount = cursor.rowcount
        self._cursor = cursor

    def one_or_none(self) -> tuple[Any, ...] | None:
        rows = self._cursor.fetchall()
        if len(rows) > 1:
            raise ValueError("more than one row")
        return tuple(rows[0]) if rows else None


class PlainConnection:
    """A ``sqlite3`` connection that runs Core statements, in the part of
    ``sqlalchemy.Connection``'s interface the chain's append uses."""

    dialect = _DIALECT

    def __init__(self, raw: sqlite3.Connection, url: URL) -> None:
        self.raw = raw
        self.url = url
        self._compiled: dict[int, tuple[Executable, _Compiled]] = {}

    def execute(
        self,
        statement: Executable,
        parameters: Mapping[str, Any] | Sequence[Mapping[str, Any]] | None = None,
    ) -> PlainResult:
        # Keyed by identity (the statement is kept alongside, so the id
        # cannot be reused): the chain's statements are module constants.
        entry = self._compiled.get(id(statement))
        if entry is None:
            entry = self._compiled[id(statement)] = (statement, _Compiled(statement))
        compiled = entry[1]
        if isinstance(parameters, Sequence):
            cursor = self.raw.executemany(compiled.sql, [compiled.row(p) for p in parameters])
        else:
            cursor = self.raw.execute(compiled.sql, compiled.row(parameters or {}))
        return PlainResult(cursor)
