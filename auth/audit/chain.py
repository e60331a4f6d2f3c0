"""Appending to the one hash chain.

Each row stores ``hash = sha256(canonical content || prev_hash)``. Appends
from many requests (and worker processes) must form one chain, so every
append moves the single ``access_chain_head`` row in the transaction that
inserts its rows: on PostgreSQL that takes the row lock until commit; on
SQLite the UPDATE takes the database's writer lock at once. Updating first
matters on SQLite: a transaction that read before writing could be refused
its upgrade to writer instead of waiting for it.

Reading the head before computing the hashes costs a round trip, so each
process remembers the head it last wrote (``_heads``) and first tries a
compare-and-swap: move the head only if it is still exactly what this
process wrote, and insert the rows only if it moved. That check runs under
the same lock as any other move, so a stale guess (another process
appended, or a transaction that moved it rolled back) changes nothing and
falls back to taking the head and reading it. On PostgreSQL the swap and
the inserts are one statement, so a lone row is one round trip in
autocommit (``commit_alone``).
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import hashlib
import json
from collections.abc import Sequence
from typing import Any, Protocol, cast

from sqlalchemy import URL, Connection, DateTime, Table, bindparam, insert, text, update
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncSession, async_sessionmaker

from auth.audit.model import Access
from gateway.clock import aware
from gateway.db.engine import bound_engine, write_transaction
from gateway.db.plain import PlainConnection
from gateway.db.tables import AccessChainHead, AccessEvent

GENESIS = "0" * 64
HEAD_ID = 1


class Content(Protocol):
    """What the hash covers: a stored ``AccessEvent`` or a row being written."""

    @property
    def seq(self) -> int: ...
    @property
    def at(self) -> dt.datetime: ...
    @property
    def citizen(self) -> str: ...
    @property
    def actor_kind(self) -> str: ...
    @property
    def actor(self) -> str: ...
    @property
    def agency(self) -> str | None: ...
    @property
    def service_code(self) -> str | None: ...
    @property
    def fields(self) -> Sequence[str]: ...
    @property
    def purpose(self) -> str: ...
    @property
    def request_id(self) -> str | None: ...


def _at(value: dt.datetime) -> str:
    # One spelling for both databases: SQLite hands datetimes back naive.
    return aware(value).astimezone(dt.UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def canonical(event: Content) -> bytes:
    """The row's content as bytes: sorted keys, no spaces, UTF-8."""
    content = {
        "seq": event.seq,
        "at": _at(event.at),
        "citizen": event.citizen,
        "actor_kind": event.actor_kind,
        "actor": event.actor,
        "agency": event.agency,
        "service_code": event.service_code,
        "fields": sorted(event.fields),
        "purpose": event.purpose,
        "request_id": event.request_id,
    }
    return json.dumps(content, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode()


def digest(event: Content, prev_hash: str) -> str:
    return hashlib.sha256(canonical(event) + b"|" + prev_hash.encode()).hexdigest()


@dataclasses.dataclass(slots=True)
class _Row:
    """A row being written: a plain object, not an ORM instance, which cost
    more than hashing and inserting it."""

    seq: int
    at: dt.datetime
    citizen: str
    actor_kind: str
    actor: str
    agency: str | None
    service_code: str | None
    fields: list[str]
    purpose: str
    request_id: str | None
    prev_hash: str
    hash: str = ""


def _linked(accesses: Sequence[Access], at: dt.datetime, length: int, last: str) -> list[_Row]:
    at = aware(at)
    rows = []
    for seq, access in enumerate(accesses, length + 1):
        row = _Row(
            seq, at, access.citizen, access.actor_kind.value, access.actor, access.agency,
            access.service_code, sorted(access.fields), access.purpose.value, access.request_id,
            last,
        )  # fmt: skip
        row.hash = last = digest(row, last)
        rows.append(row)
    return rows


# The head each process last wrote, per database: a guess that every swap
# checks, never trusted on its own.
_heads: dict[str, tuple[int, str]] = {}


def _database(url: URL) -> str:
    # Whichever driver reaches it: the async engine and the SQLite inline
    # writer's plain connection share one guess instead of spoiling each other's.
    return f"{url.get_backend_name()}://{url.host}:{url.port}/{url.database}"


def _remember(url: URL, rows: Sequence[_Row]) -> None:
    _heads[_database(url)] = (rows[-1].seq, rows[-1].hash)


async def append(session: AsyncSession, access: Access, at: dt.datetime) -> None:
    """Add one event inside the caller's transaction; the caller commits."""
    await append_all(session, [access], at)


async def append_all(session: AsyncSession, accesses: Sequence[Access], at: dt.datetime) -> None:
    """Add several events, in order, moving the chain head once (group commit)."""
    if not accesses:
        return
    # Whatever the caller changed goes first, so the chain head stays the
    # last lock its transaction takes, as everywhere else.
    await session.flush()
    await append_on(await session.connection(), accesses, at)


async def append_on(
    connection: AsyncConnection, accesses: Sequence[Access], at: dt.datetime
) -> None:
    """``append_all`` on a Core connection inside its transaction."""
    if accesses:
        await connection.run_sync(append_sync, accesses, at)


def append_sync(
    connection: Connection | PlainConnection, accesses: Sequence[Access], at: dt.datetime
) -> None:
    """The append itself, written once for both kinds of connection: the
    async ones run it through ``run_sync`` (one greenlet switch for all its
    statements), the SQLite inline writer (``auth/audit/sqlite_inline.py``)
    on its plain one."""
    url = connection.url if isinstance(connection, PlainConnection) else connection.engine.url
    seen = _heads.get(_database(url))
    if seen is not None:
        rows = _linked(accesses, at, *seen)
        if _swap(connection, seen, rows):
            _remember(url, rows)
            return
    taken = connection.execute(_TAKE_HEAD, {"taken": len(accesses)}).one_or_none()
    if taken is None:
        raise RuntimeError("access_chain_head is missing: run `khaalga db upgrade`")
    rows = _linked(accesses, at, int(taken[0]) - len(accesses), str(taken[1]))
    connection.execute(_INSERT_EVENTS, [_values(row) for row in rows])
    connection.execute(_MOVE_HEAD, {"last": rows[-1].hash})
    _remember(url, rows)


async def commit_alone(
    sessions: async_sessionmaker[AsyncSession], accesses: Sequence[Access], at: dt.datetime
) -> None:
    """Append and commit, in a transaction of their own (the resolvers'
    group commit): the fewest round trips each database allows."""
    if not accesses:
        return
    engine = bound_engine(sessions)
    seen = _heads.get(_database(engine.url))
    if seen is not None and engine.dialect.name == "postgresql":
        # One statement is its own transaction: no BEGIN, no COMMIT.
        rows = _linked(accesses, at, *seen)
        async with engine.connect() as connection:
            await connection.execution_options(isolation_level="AUTOCOMMIT")
            swapped = await connection.run_sync(_swap, seen, rows)
        # Stale when the swap changed nothing: take the head instead of guessing again.
        settle_swap(engine.url, rows, swapped)
        if swapped:
            return
    async with write_transaction(sessions) as connection:
        await append_on(connection, accesses, at)


def _swap(
    connection: Connection | PlainConnection, seen: tuple[int, str], rows: Sequence[_Row]
) -> bool:
    """Move the head from ``seen`` past ``rows`` and insert them, or do
    nothing at all when the head is no longer ``seen``."""
    if connection.dialect.name == "postgresql":
        result = connection.execute(SWAP_PG, swap_pg_parameters(seen, rows))
        return result.rowcount == len(rows)
    # SQLite has no data-modifying WITH: the swap, then the rows if it moved.
    if connection.execute(_SWAP_HEAD, _moved(seen, rows)).rowcount != 1:
        return False
    connection.execute(_INSERT_EVENTS, [_values(row) for row in rows])
    return True


def _moved(seen: tuple[int, str], rows: Sequence[_Row]) -> dict[str, Any]:
    return {"length": rows[-1].seq, "last": rows[-1].hash, "seen": seen[0], "seen_hash": seen[1]}


def swap_pg_parameters(seen: tuple[int, str], rows: Sequence[_Row]) -> dict[str, Any]:
    """``SWAP_PG``'s parameters: the rows as one JSON document, one
    parameter whatever their number."""
    document = json.dumps(
        [{name: getattr(row, name) for name in _RECORD} for row in rows], ensure_ascii=False
    )
    return {**_moved(seen, rows), "rows": document, "at": rows[0].at}


def known_head(url: URL) -> tuple[int, str] | None:
    """The head this process last wrote to ``url``'s database, if any: a guess."""
    return _heads.get(_database(url))


def linked_after(seen: tuple[int, str], accesses: Sequence[Access], at: dt.datetime) -> list[_Row]:
    """``accesses`` as rows that follow the head ``seen``."""
    return _linked(accesses, at, *seen)


def settle_swap(url: URL, rows: Sequence[_Row], swapped: bool) -> None:
    """After a swap of ``rows`` on ``url``'s database: remember the head it
    wrote, or forget a guess that proved stale."""
    if swapped:
        _remember(url, rows)
    else:
        _heads.pop(_database(url), None)


def _values(row: _Row) -> dict[str, Any]:
    return {name: getattr(row, name) for name in _COLUMNS}


_HEAD = cast(Table, AccessChainHead.__table__)
_EVENTS = cast(Table, AccessEvent.__table__)
_COLUMNS = tuple(column.key for column in _EVENTS.columns)
_INSERT_EVENTS = insert(_EVENTS)
_TAKE_HEAD = (
    update(_HEAD)
    .where(_HEAD.c.id == HEAD_ID)
    .values(length=_HEAD.c.length + bindparam("taken"))
    .returning(_HEAD.c.length, _HEAD.c.last_hash)
)
_MOVE_HEAD = update(_HEAD).where(_HEAD.c.id == HEAD_ID).values(last_hash=bindparam("last"))
_SWAP_HEAD = (
    update(_HEAD)
    .where(
        _HEAD.c.id == HEAD_ID,
        _HEAD.c.length == bindparam("seen"),
        _HEAD.c.last_hash == bindparam("seen_hash"),
    )
    .values(length=bindparam("length"), last_hash=bindparam("last"))
)
# Every row of one append shares ``at``; the rest is read from the JSON.
_RECORD = {
    "seq": "INTEGER", "citizen": "VARCHAR", "actor_kind": "VARCHAR", "actor": "VARCHAR",
    "agency": "VARCHAR", "service_code": "VARCHAR", "fields": "JSON", "purpose": "VARCHAR",
    "request_id": "VARCHAR", "prev_hash": "VARCHAR", "hash": "VARCHAR",
}  # fmt: skip
SWAP_PG = text(
    f"""
    WITH moved AS (
        UPDATE access_chain_head SET length = :length, last_hash = :last
        WHERE id = {HEAD_ID} AND length = :seen AND last_hash = :seen_hash
        RETURNING id
    )
    INSERT INTO access_events ({", ".join(_COLUMNS)})
    SELECT {", ".join("CAST(:at AS TIMESTAMPTZ)" if c == "at" else f"e.{c}" for c in _COLUMNS)}
    FROM moved, json_to_recordset(CAST(:rows AS JSON))
        AS e({", ".join(f"{c} {t}" for c, t in _RECORD.items())})
    """
).bindparams(bindparam("at", type_=DateTime(timezone=True)))
