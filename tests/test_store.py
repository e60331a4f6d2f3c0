"""The application store on SQLite and PostgreSQL: idempotency under
concurrency, one outbox row per application, owner scoping, paging."""

from __future__ import annotations

import asyncio
import datetime as dt
from collections.abc import AsyncIterator

import pytest
from sqlalchemy import func, select, update

from auth.dev_issuer import citizen, officer
from auth.principal import ANONYMOUS
from gateway.applications import (
    ApplicationStore,
    NotCancellable,
    Status,
    decode_cursor,
    encode_cursor,
)
from gateway.db.engine import create_engine, session_factory
from gateway.db.tables import Application, OutboxItem
from tests.factories import application_service

SERVICE = application_service("TEST-001")
FORM = {"registerNumber": "УБ99010112", "phone": "99112233", "area": 10, "district": "KHAN_UUL"}
ALICE, BOB = "УБ99010112", "ТА85122304"


@pytest.fixture
async def store(database_url: str) -> AsyncIterator[ApplicationStore]:
    engine = create_engine(database_url)
    yield ApplicationStore(session_factory(engine))
    await engine.dispose()


async def count(store: ApplicationStore, table: type[Application] | type[OutboxItem]) -> int:
    async with store.sessions() as session:
        return int(await session.scalar(select(func.count()).select_from(table)) or 0)


async def test_submission_writes_application_history_and_outbox(store: ApplicationStore) -> None:
    app = await store.submit(ALICE, SERVICE, FORM, None)
    assert app.status == Status.SUBMITTED
    assert [e.status for e in app.history] == ["SUBMITTED"]
    assert await count(store, OutboxItem) == 1


async def test_same_key_concurrently_gives_one_application(store: ApplicationStore) -> None:
    apps = await asyncio.gather(*(store.submit(ALICE, SERVICE, FORM, "key-1") for _ in range(10)))
    assert len({a.id for a in apps}) == 1
    assert await count(store, Application) == 1
    assert await count(store, OutboxItem) == 1


async def test_keys_are_per_citizen(store: ApplicationStore) -> None:
    first = await store.submit(ALICE, SERVICE, FORM, "shared")
    second = await store.submit(BOB, SERVICE, FORM, "shared")
    assert first.id != second.id


async def test_other_citizens_see_nothing(store: ApplicationStore) -> None:
    app = await store.submit(ALICE, SERVICE, FORM, None)
    assert await store.get(citizen(ALICE), app.id) is not None
    assert await store.get(citizen(BOB), app.id) is None
    assert await store.get(ANONYMOUS, app.id) is None
    assert (await store.list(citizen(BOB), None, 10, None)).total == 0
    assert await store.get(officer("TEST"), app.id) is not None
    assert await store.get(officer("LAND"), app.id) is None


async def test_paging_newest_first_without_gaps(store: ApplicationStore) -> None:
    ids = [(await store.submit(ALICE, SERVICE, FORM, None)).id for _ in range(7)]
    seen: list[str] = []
    after = None
    while True:
        page = await store.list(citizen(ALICE), None, 3, after)
        assert page.total == 7
        seen += [a.id for a in page.items]
        if not page.has_next:
            break
        # Through the cursor a client holds, as the schema reads it back.
        after = decode_cursor(encode_cursor(page.items[-1]))
        assert after is not None
    assert seen == list(reversed(ids))


@pytest.mark.parametrize("cursor", ["bm9wZQ==", "not base64!", "", "YXBwOjIwMjUtMDEtMDF8eA=="])
def test_a_cursor_not_made_here_decodes_to_nothing(cursor: str) -> None:
    # The last is another list's (a developer app's, tag "app:") cursor.
    assert decode_cursor(cursor) is None


async def test_cancel_only_before_review(store: ApplicationStore) -> None:
    app = await store.submit(ALICE, SERVICE, FORM, None)
    assert await store.cancel(citizen(BOB), app.id) is None
    cancelled = await store.cancel(citizen(ALICE), app.id)
    assert cancelled is not None and cancelled.status == Status.CANCELLED
    async with store.sessions() as session:
        outbox = (await session.scalars(select(OutboxItem))).one()
    assert outbox.state == "CANCELLED"
    with pytest.raises(NotCancellable) as refused:
        await store.cancel(citizen(ALICE), app.id)
    assert not refused.value.sent


@pytest.mark.parametrize(
    "handed_over",
    [
        {"lease_owner": "worker-1", "lease_until": dt.datetime(2099, 1, 1, tzinfo=dt.UTC)},
        {"attempts": 1, "last_error": "Timeout: no answer"},  # may have reached the agency
        {"state": "DONE"},
    ],
    ids=["being-sent", "attempted", "delivered"],
)
async def test_no_cancel_once_the_agency_may_have_it(
    store: ApplicationStore, handed_over: dict[str, object]
) -> None:
    app = await store.submit(ALICE, SERVICE, FORM, None)
    async with store.sessions.begin() as session:
        await session.execute(update(OutboxItem).values(**handed_over))
    with pytest.raises(NotCancellable) as refused:
        await store.cancel(citizen(ALICE), app.id)
    assert refused.value.sent
    async with store.sessions() as session:
        stored = await session.get(Application, app.id)
        outbox = (await session.scalars(select(OutboxItem))).one()
    assert stored is not None and stored.status == Status.SUBMITTED
    assert outbox.state == handed_over.get("state", "PENDING")


async def test_database_errors_never_quote_personal_data(store: ApplicationStore) -> None:
    from sqlalchemy.exc import IntegrityError

    app = await store.submit(ALICE, SERVICE, FORM, None)
    clash = Application(
        id=app.id, service_code=SERVICE.code, agency="TEST", citizen=BOB, status="SUBMITTED",
        form=FORM, submitted_at=app.submitted_at, updated_at=app.submitted_at,
    )  # fmt: skip
    with pytest.raises(IntegrityError) as caught:
        async with store.sessions.begin() as session:
            session.add(clash)
    assert BOB not in str(caught.value)
    assert ALICE not in str(caught.value)
