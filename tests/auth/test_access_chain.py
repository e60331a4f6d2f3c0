"""The hash-chained access log on SQLite and PostgreSQL: concurrent appends
form one chain, and every kind of tampering is found and named."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import pytest
from sqlalchemy import delete, select, update
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from auth.audit.model import Access, ActorKind, Purpose
from auth.audit.record import AccessLog, record
from auth.audit.verify import verify
from gateway.db.engine import create_engine, session_factory
from gateway.db.tables import AccessChainHead, AccessEvent
from legacy.samples import CITIZENS


@pytest.fixture
async def sessions(database_url: str) -> AsyncIterator[async_sessionmaker[AsyncSession]]:
    engine = create_engine(database_url)
    yield session_factory(engine)
    await engine.dispose()


def access(n: int, citizen: str = CITIZENS[0]) -> Access:
    return Access(
        citizen=citizen, actor_kind=ActorKind.OFFICER, actor=f"officer-{n}", agency="LAND",
        service_code="LAND-001", fields=("parcelNumber", "registerNumber"),
        purpose=Purpose.CASE_HANDLING, request_id=f"req-{n}",
    )  # fmt: skip


async def filled(sessions: async_sessionmaker[AsyncSession], n: int) -> None:
    for i in range(n):
        await record(sessions, access(i))


async def test_an_untouched_chain_verifies(sessions: async_sessionmaker[AsyncSession]) -> None:
    empty = await verify(sessions)
    assert empty.ok and empty.checked == 0
    await filled(sessions, 5)
    verdict = await verify(sessions)
    assert verdict.ok and verdict.checked == 5 and verdict.first_bad_seq is None


async def test_concurrent_appends_keep_one_chain(
    sessions: async_sessionmaker[AsyncSession],
) -> None:
    # Each record() is its own transaction on its own connection: these
    # really race for the chain head (PostgreSQL row lock, SQLite writer lock).
    await asyncio.gather(*(record(sessions, access(i)) for i in range(40)))
    verdict = await verify(sessions)
    assert verdict.ok, verdict
    assert verdict.checked == 40
    async with sessions() as session:
        rows = (await session.scalars(select(AccessEvent).order_by(AccessEvent.seq))).all()
    assert [r.seq for r in rows] == list(range(1, 41))
    assert sorted(r.request_id or "" for r in rows) == sorted(f"req-{i}" for i in range(40))


async def test_the_resolvers_recorder_and_other_writers_share_one_chain(
    sessions: async_sessionmaker[AsyncSession],
) -> None:
    # AccessLog's group commits and record()'s one-off transactions race for
    # the chain head; several rows of one request go in together.
    log = AccessLog(sessions)
    try:
        await asyncio.gather(
            *(log.record(access(i)) for i in range(30)),
            *(record(sessions, access(i)) for i in range(30, 45)),
            *(log.record(access(i), access(i + 100)) for i in range(45, 50)),
        )
    finally:
        await log.aclose()
    verdict = await verify(sessions)
    assert verdict.ok, verdict
    assert verdict.checked == 55
    async with sessions() as session:
        rows = (await session.scalars(select(AccessEvent).order_by(AccessEvent.seq))).all()
    assert sorted(r.request_id or "" for r in rows) == sorted(
        [f"req-{i}" for i in range(50)] + [f"req-{i + 100}" for i in range(45, 50)]
    )
    # Read back as written, whichever path wrote it.
    assert {(r.citizen, r.agency, tuple(r.fields), r.purpose) for r in rows} == {
        (CITIZENS[0], "LAND", ("parcelNumber", "registerNumber"), "CASE_HANDLING")
    }


async def tamper(sessions: async_sessionmaker[AsyncSession], statement: object) -> None:
    async with sessions.begin() as session:
        await session.execute(statement)  # type: ignore[call-overload]


async def test_an_edited_row_is_named(sessions: async_sessionmaker[AsyncSession]) -> None:
    await filled(sessions, 6)
    await tamper(sessions, update(AccessEvent).where(AccessEvent.seq == 4).values(actor="nobody"))
    verdict = await verify(sessions)
    assert not verdict.ok and verdict.first_bad_seq == 4
    assert verdict.reason is not None and "edited" in verdict.reason


async def test_a_deleted_row_is_found(sessions: async_sessionmaker[AsyncSession]) -> None:
    await filled(sessions, 6)
    await tamper(sessions, delete(AccessEvent).where(AccessEvent.seq == 3))
    verdict = await verify(sessions)
    assert not verdict.ok and verdict.first_bad_seq == 4  # the row after the gap


async def test_a_deleted_tail_is_found(sessions: async_sessionmaker[AsyncSession]) -> None:
    await filled(sessions, 6)
    await tamper(sessions, delete(AccessEvent).where(AccessEvent.seq >= 5))
    verdict = await verify(sessions)
    assert not verdict.ok and verdict.first_bad_seq == 5


async def test_an_inserted_row_is_named(sessions: async_sessionmaker[AsyncSession]) -> None:
    await filled(sessions, 4)
    async with sessions.begin() as session:
        third = await session.get(AccessEvent, 3)
        assert third is not None
        # A forger copies a genuine row's hashes onto a new position.
        session.add(
            AccessEvent(
                seq=0, at=third.at, citizen=third.citizen, actor_kind="APP", actor="forged",
                agency=None, service_code=None, fields=[], purpose="LOOKUP",
                request_id=None, prev_hash=third.prev_hash, hash=third.hash,
            )
        )  # fmt: skip
    verdict = await verify(sessions)
    assert not verdict.ok and verdict.first_bad_seq == 0


async def test_renumbering_after_a_delete_is_found(
    sessions: async_sessionmaker[AsyncSession],
) -> None:
    await filled(sessions, 5)
    await tamper(sessions, delete(AccessEvent).where(AccessEvent.seq == 2))
    for seq in (3, 4, 5):  # close the gap so the numbering looks whole
        renumber = update(AccessEvent).where(AccessEvent.seq == seq).values(seq=seq - 1)
        await tamper(sessions, renumber)
    await tamper(sessions, update(AccessChainHead).values(length=4))
    verdict = await verify(sessions)
    assert not verdict.ok and verdict.first_bad_seq == 2


async def test_reordered_rows_are_found(sessions: async_sessionmaker[AsyncSession]) -> None:
    await filled(sessions, 5)
    await tamper(sessions, update(AccessEvent).where(AccessEvent.seq == 2).values(seq=-2))
    await tamper(sessions, update(AccessEvent).where(AccessEvent.seq == 3).values(seq=2))
    await tamper(sessions, update(AccessEvent).where(AccessEvent.seq == -2).values(seq=3))
    verdict = await verify(sessions)
    assert not verdict.ok and verdict.first_bad_seq == 2
