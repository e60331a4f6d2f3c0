"""Group commit of submissions, on SQLite and PostgreSQL: many concurrent
submissions share transactions, yet each is stored whole (application,
history, outbox row, access-log row), one bad item fails alone, and a
client that gives up mid-commit does not lose its application."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Sequence

import pytest
from sqlalchemy import func, select

from auth.audit.model import Access, ActorKind, Purpose
from auth.audit.verify import verify
from gateway.applications import ApplicationStore
from gateway.db.engine import create_engine, session_factory
from gateway.db.tables import AccessEvent, Application, ApplicationEvent, OutboxItem
from gateway.group_commit import GroupCommit
from legacy.samples import CITIZENS
from tests.factories import application_service

SERVICE = application_service("TEST-001")
FORM = {"registerNumber": CITIZENS[0], "phone": "99112233", "area": 10, "district": "KHAN_UUL"}


@pytest.fixture
async def store(database_url: str) -> AsyncIterator[ApplicationStore]:
    engine = create_engine(database_url)
    store = ApplicationStore(session_factory(engine))
    yield store
    await store.aclose()
    await engine.dispose()


def submission(citizen: str) -> Access:
    return Access(
        citizen=citizen, actor_kind=ActorKind.CITIZEN, actor=citizen, agency="TEST",
        service_code=SERVICE.code, fields=tuple(FORM), purpose=Purpose.SUBMISSION,
        request_id=None,
    )  # fmt: skip


async def rows(store: ApplicationStore, table: type[object]) -> int:
    async with store.sessions() as session:
        return int(await session.scalar(select(func.count()).select_from(table)) or 0)


async def test_concurrent_submissions_are_each_stored_whole(store: ApplicationStore) -> None:
    citizens = [CITIZENS[i % len(CITIZENS)] for i in range(120)]
    apps = await asyncio.gather(
        *(
            store.submit(c, SERVICE, FORM, f"key-{i}", access=submission(c))
            for i, c in enumerate(citizens)
        )
    )
    assert len({a.id for a in apps}) == 120
    for table in (Application, ApplicationEvent, OutboxItem, AccessEvent):
        assert await rows(store, table) == 120
    verdict = await verify(store.sessions)
    assert verdict.ok and verdict.checked == 120


async def test_a_duplicate_in_a_batch_fails_alone(store: ApplicationStore) -> None:
    first = await store.submit(CITIZENS[0], SERVICE, FORM, "taken")
    again, *others = await asyncio.gather(
        store.submit(CITIZENS[0], SERVICE, FORM, "taken"),
        *(store.submit(CITIZENS[1], SERVICE, FORM, f"fresh-{i}") for i in range(20)),
    )
    assert again.id == first.id
    assert len({a.id for a in others}) == 20
    assert await rows(store, Application) == 21
    assert await rows(store, OutboxItem) == 21


async def test_a_client_that_gives_up_still_has_its_application(store: ApplicationStore) -> None:
    tasks = [
        asyncio.create_task(store.submit(CITIZENS[2], SERVICE, FORM, f"gone-{i}"))
        for i in range(10)
    ]
    await asyncio.sleep(0)  # queued, commit under way
    for task in tasks:
        task.cancel()
    await asyncio.gather(*tasks, return_exceptions=True)
    await store.aclose()  # what shutdown does: finish the queued commit
    assert await rows(store, Application) == 10
    # The client's retry with its key finds the stored application.
    retried = await store.submit(CITIZENS[2], SERVICE, FORM, "gone-3")
    assert await rows(store, Application) == 10
    assert retried.idempotency_key == "gone-3"


async def test_a_failed_write_nobody_waits_for_is_logged_without_its_values(
    caplog: pytest.LogCaptureFixture,
) -> None:
    release = asyncio.Event()

    async def failing(batch: Sequence[str]) -> None:
        await release.wait()
        raise ValueError(f"row {batch[0]} rejected")

    group = GroupCommit[str](failing)
    waiter = asyncio.ensure_future(group(CITIZENS[0]))
    await asyncio.sleep(0)
    waiter.cancel()
    release.set()
    await group.aclose()
    await asyncio.sleep(0)  # the done-callbacks
    assert waiter.cancelled()
    [record] = [r for r in caplog.records if r.name == "khaalga.group_commit"]
    assert record.levelname == "ERROR" and "ValueError" in record.getMessage()
    assert CITIZENS[0] not in record.getMessage()
