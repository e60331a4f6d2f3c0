"""Appending to the one hash chain.

Each row stores ``hash = sha256(canonical content || prev_hash)``. Appends
from many requests (and worker processes) must form one chain, so every
append first *updates* the single ``access_chain_head`` row: on PostgreSQL
that takes the row lock (as ``SELECT ... FOR UPDATE`` would) until commit;
on SQLite the UPDATE takes the database's writer lock at once. Updating
first matters on SQLite: a transaction that read before writing could be
refused its upgrade to writer instead of waiting for it.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
from collections.abc import Sequence
from typing import cast

from sqlalchemy import Table, bindparam, insert, update
from sqlalchemy.ext.asyncio import AsyncSession

from auth.audit.model import Access
from gateway.clock import aware
from gateway.db.tables import AccessChainHead, AccessEvent

GENESIS = "0" * 64
HEAD_ID = 1


def _at(value: dt.datetime) -> str:
    # One spelling for both databases: SQLite hands datetimes back naive.
    return aware(value).astimezone(dt.UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def canonical(event: AccessEvent) -> bytes:
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


def digest(event: AccessEvent, prev_hash: str) -> str:
    return hashlib.sha256(canonical(event) + b"|" + prev_hash.encode()).hexdigest()


async def append(session: AsyncSession, access: Access, at: dt.datetime) -> AccessEvent:
    """Add one event inside the caller's transaction; the caller commits."""
    (event,) = await append_all(session, [access], at)
    return event


async def append_all(
    session: AsyncSession, accesses: Sequence[Access], at: dt.datetime
) -> list[AccessEvent]:
    """Add several events, in order, taking the chain head once (group commit)."""
    if not accesses:
        return []
    # Whatever the caller changed goes first, so the chain head stays the
    # last lock its transaction takes, as everywhere else.
    await session.flush()
    # Core statements on the session's connection, not ORM ones: a LOOKUP
    # at a quiet hour commits one row alone, and the ORM's unit of work and
    # bulk-update bookkeeping were most of that commit's CPU.
    connection = await session.connection()
    locked = await connection.execute(_TAKE_HEAD, {"taken": len(accesses)})
    row = locked.one_or_none()
    if row is None:
        raise RuntimeError("access_chain_head is missing: run `khaalga db upgrade`")
    seq, prev_hash = int(row[0]) - len(accesses), str(row[1])
    events = []
    for access in accesses:
        seq += 1
        event = AccessEvent(
            seq=seq,
            at=aware(at),
            citizen=access.citizen,
            actor_kind=access.actor_kind.value,
            actor=access.actor,
            agency=access.agency,
            service_code=access.service_code,
            fields=sorted(access.fields),
            purpose=access.purpose.value,
            request_id=access.request_id,
            prev_hash=prev_hash,
        )
        event.hash = prev_hash = digest(event, prev_hash)
        events.append(event)
    await connection.execute(
        insert(_EVENTS), [{c.key: getattr(e, c.key) for c in _EVENTS.columns} for e in events]
    )
    await connection.execute(_MOVE_HEAD, {"last": prev_hash})
    return events


_HEAD = cast(Table, AccessChainHead.__table__)
_EVENTS = cast(Table, AccessEvent.__table__)
_TAKE_HEAD = (
    update(_HEAD)
    .where(_HEAD.c.id == HEAD_ID)
    .values(length=_HEAD.c.length + bindparam("taken"))
    .returning(_HEAD.c.length, _HEAD.c.last_hash)
)
_MOVE_HEAD = update(_HEAD).where(_HEAD.c.id == HEAD_ID).values(last_hash=bindparam("last"))
