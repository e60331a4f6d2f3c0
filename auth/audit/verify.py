"""Walk the whole chain and name the first row that does not fit.

An edited row no longer matches its hash; a deleted, inserted or moved row
breaks the gap-free ``seq`` numbering or its successor's ``prev_hash``; a
cut-off tail no longer matches the chain head. (Someone able to rewrite
every row *and* the head can forge a consistent chain: compare the head hash
that ``khaalga audit verify`` prints with one kept outside the database.)
"""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from auth.audit.chain import GENESIS, HEAD_ID, digest
from gateway.db.tables import AccessChainHead, AccessEvent

BATCH = 1000


@dataclass(frozen=True, slots=True)
class Verdict:
    ok: bool
    checked: int
    head_hash: str
    first_bad_seq: int | None = None
    reason: str | None = None


async def verify(sessions: async_sessionmaker[AsyncSession]) -> Verdict:
    prev, expected, checked = GENESIS, 1, 0
    last: int | None = None  # no lower bound at first: a row numbered 0 or less is bad too
    async with sessions() as session:
        head = await session.get(AccessChainHead, HEAD_ID)
        if head is None:
            return Verdict(False, 0, GENESIS, None, "the chain head row is missing")
        while True:
            query = select(AccessEvent).order_by(AccessEvent.seq).limit(BATCH)
            if last is not None:
                query = query.where(AccessEvent.seq > last)
            rows = (await session.scalars(query)).all()
            for row in rows:
                problem = _problem(row, expected, prev)
                if problem:
                    return Verdict(False, checked, head.last_hash, row.seq, problem)
                prev, expected, checked, last = row.hash, expected + 1, checked + 1, row.seq
            if len(rows) < BATCH:
                break
        if head.length != checked or head.last_hash != prev:
            # Rows were removed from the end (or the head was tampered with).
            return Verdict(
                False, checked, head.last_hash, checked + 1,
                f"the chain head says {head.length} rows ending in another hash",
            )  # fmt: skip
    return Verdict(True, checked, head.last_hash)


def _problem(row: AccessEvent, expected: int, prev: str) -> str | None:
    if row.seq != expected:
        return f"expected row {expected} here: a row is missing or was inserted"
    if row.prev_hash != prev:
        return "does not link to the row before it (deleted, inserted or reordered)"
    if row.hash != digest(row, row.prev_hash):
        return "its content does not match its hash (edited)"
    return None
