"""The outbox worker against the in-memory back end, on SQLite and PostgreSQL."""

from __future__ import annotations

import asyncio
from collections import Counter
from collections.abc import AsyncIterator, Awaitable, Callable

import pytest

from connectors.base import BackendRequest, BackendResponse
from connectors.delivery import DeliveryWorker, idempotency_key, replay
from connectors.errors import BackendRejected, BackendUnavailable
from connectors.memory import MemoryConnector
from connectors.registry import ConnectorRegistry
from gateway.applications import ApplicationStore, Status
from gateway.catalog.loader import Catalog
from gateway.db.engine import create_engine, session_factory
from gateway.db.tables import Application
from tests.factories import agency
from tests.support.delivery import DeliveryRig

AGENCY = agency("TEST")
CATALOG = Catalog((AGENCY,))
SERVICE = AGENCY.services[0]
FORM = {"registerNumber": "УБ99010112", "phone": "99112233", "area": 10, "district": "KHAN_UUL"}


class Rig(DeliveryRig):
    def worker(self, **kwargs: float) -> DeliveryWorker:
        options = {"backoff_base": 0.01, "status_interval": 0.01, **kwargs}
        return DeliveryWorker(self.store.sessions, CATALOG, self.registry, **options)  # type: ignore[arg-type]


@pytest.fixture
async def rig(database_url: str) -> AsyncIterator[Rig]:
    engine = create_engine(database_url)
    backend = MemoryConnector("TEST", lambda _request: {})
    registry = ConnectorRegistry(CATALOG, {}, overrides={"TEST": backend}, breaker_threshold=100)
    yield Rig(ApplicationStore(session_factory(engine)), backend, registry)
    await engine.dispose()


async def test_delivery_marks_delivered_with_the_agency_reference(rig: Rig) -> None:
    app = await rig.store.submit("УБ99010112", SERVICE, FORM, None)
    assert await rig.worker().deliver_due() == 1
    delivered = await rig.app(app.id)
    assert delivered.status == Status.DELIVERED
    assert delivered.reference == rig.backend.filed[idempotency_key(app.id)]
    assert (await rig.outbox()).state == "DONE"
    assert rig.backend.calls[0].payload["REG"] == "УБ99010112"


async def test_transient_failure_retries_with_the_same_key(rig: Rig) -> None:
    app = await rig.store.submit("УБ99010112", SERVICE, FORM, None)
    worker = rig.worker()
    rig.backend.fail_with = BackendUnavailable("TEST", "down")
    await worker.deliver_due()
    item = await rig.outbox()
    assert (item.state, item.attempts) == ("PENDING", 1)
    assert item.last_error == "BackendUnavailable: down"
    rig.backend.fail_with = None
    await asyncio.sleep(0.05)  # past the jittered backoff
    await worker.deliver_due()
    assert (await rig.app(app.id)).status == Status.DELIVERED
    keys = {call.idempotency_key for call in rig.backend.calls}
    assert keys == {idempotency_key(app.id)}
    assert len(rig.backend.filed) == 1


async def test_permanent_failure_dead_letters_and_replay_requeues(rig: Rig) -> None:
    app = await rig.store.submit("УБ99010112", SERVICE, FORM, None)
    worker = rig.worker()
    rig.backend.fail_with = BackendRejected("TEST", "rule broken")
    await worker.deliver_due()
    item = await rig.outbox()
    assert item.state == "DEAD"
    assert item.last_error == "BackendRejected: rule broken"
    assert (await rig.app(app.id)).status == Status.SUBMITTED  # kept, never lost
    rig.backend.fail_with = None
    assert await replay(rig.store.sessions, None) == 1
    await worker.deliver_due()
    assert (await rig.app(app.id)).status == Status.DELIVERED


async def test_attempts_are_capped(rig: Rig) -> None:
    await rig.store.submit("УБ99010112", SERVICE, FORM, None)
    worker = rig.worker(max_attempts=3)
    rig.backend.fail_with = BackendUnavailable("TEST", "down")
    for _ in range(3):
        await rig.due_again()
        await worker.deliver_due()
    assert (await rig.outbox()).state == "DEAD"


async def test_an_expired_lease_is_taken_over_and_filed_once(rig: Rig) -> None:
    app = await rig.store.submit("УБ99010112", SERVICE, FORM, None)
    crashed = rig.worker(lease_seconds=0.05)
    assert await crashed._claim(1, Counter()) == [((await rig.outbox()).id, "TEST")]  # "dies"
    survivor = rig.worker()
    assert await survivor.deliver_due() == 0  # the lease still holds
    await asyncio.sleep(0.1)
    assert await survivor.deliver_due() == 1
    assert (await rig.app(app.id)).status == Status.DELIVERED
    assert len(rig.backend.filed) == 1


async def test_two_workers_never_deliver_the_same_item(rig: Rig) -> None:
    for _ in range(30):
        await rig.store.submit("УБ99010112", SERVICE, FORM, None)
    first, second = rig.worker(), rig.worker()
    while True:
        done = await asyncio.gather(first.deliver_due(), second.deliver_due())
        if not sum(done):
            break
    submits = [c for c in rig.backend.calls if c.action == "SUBMIT"]
    assert len(submits) == 30
    assert len({c.idempotency_key for c in submits}) == 30


async def test_status_changes_flow_into_history(rig: Rig) -> None:
    app = await rig.store.submit("УБ99010112", SERVICE, FORM, None)
    worker = rig.worker()
    await worker.deliver_due()
    reference = (await rig.app(app.id)).reference
    assert reference is not None
    rig.backend.statuses[reference] = ("REJECTED", "Бүрдүүлбэр дутуу / Documents missing")
    await asyncio.sleep(0.02)
    assert await worker.poll_statuses() == 1
    final = await rig.app(app.id)
    assert final.status == Status.REJECTED
    assert [(e.status, e.note) for e in final.history][-1] == (
        "REJECTED",
        "Бүрдүүлбэр дутуу / Documents missing",
    )
    await asyncio.sleep(0.02)
    assert await worker.poll_statuses() == 0  # final: no more polling


async def test_operators_see_dead_letters_with_reasons(rig: Rig) -> None:
    from auth.principal import ANONYMOUS, Principal, PrincipalKind
    from schema.context import Context, Services
    from schema.root import build_schema

    app = await rig.store.submit("УБ99010112", SERVICE, FORM, None)
    rig.backend.fail_with = BackendRejected("TEST", "rule broken")
    await rig.worker().deliver_due()
    schema = build_schema(CATALOG)
    services = Services(catalog=CATALOG, store=rig.store, registry=rig.registry)
    query = "{ deadLetters { applicationId agency attempts lastError } }"
    operator = Principal(PrincipalKind.OPERATOR, "op")
    result = await schema.execute(query, context_value=Context(operator, services))
    assert result.errors is None
    assert result.data == {
        "deadLetters": [
            {
                "applicationId": app.id,
                "agency": "TEST",
                "attempts": 1,
                "lastError": "BackendRejected: rule broken",
            }
        ]
    }
    for principal in (ANONYMOUS, Principal(PrincipalKind.CITIZEN, "УБ99010112")):
        denied = await schema.execute(query, context_value=Context(principal, services))
        assert denied.errors is not None
        assert denied.errors[0].extensions["code"] in ("UNAUTHENTICATED", "FORBIDDEN")


class Stuck(MemoryConnector):
    """An agency that takes the request and does not answer until released."""

    def __init__(self, agency: str) -> None:
        super().__init__(agency, lambda _request: {})
        self.release = asyncio.Event()

    async def send(self, request: BackendRequest) -> BackendResponse:
        self.calls.append(request)
        await self.release.wait()
        return BackendResponse(reference=f"SLOW-{len(self.calls)}", status="DELIVERED")


async def test_a_stuck_agency_does_not_hold_up_the_others(database_url: str) -> None:
    slow_agency, fast_agency = agency("SLOW"), agency("FAST")
    catalog = Catalog((slow_agency, fast_agency))
    slow, fast = Stuck("SLOW"), MemoryConnector("FAST", lambda _request: {})
    registry = ConnectorRegistry(catalog, {}, overrides={"SLOW": slow, "FAST": fast})
    engine = create_engine(database_url)
    store = ApplicationStore(session_factory(engine))

    async def delivered(app_ids: list[str]) -> bool:
        async with store.sessions() as session:
            rows = [await session.get(Application, app_id) for app_id in app_ids]
        return all(row is not None and row.status == Status.DELIVERED for row in rows)

    for _ in range(12):
        await store.submit("УБ99010112", slow_agency.services[0], FORM, None)
    waiting = [(await store.submit("ТА85122304", fast_agency.services[0], FORM, None)).id]
    worker = DeliveryWorker(store.sessions, catalog, registry, batch=10, per_agency=4,
                            poll_interval=0.01)  # fmt: skip
    running = asyncio.create_task(worker.run())
    try:
        assert await eventually(lambda: _true(len(slow.calls) == 4))
        # Stored while SLOW holds its slots: still delivered at once.
        waiting.append((await store.submit("ТА85122304", fast_agency.services[0], FORM, None)).id)
        assert await eventually(lambda: delivered(waiting))
        assert len(slow.calls) == 4  # never more than its share in flight
        slow.release.set()
        assert await eventually(lambda: _true(len(slow.calls) == 12))  # then SLOW drains
    finally:
        slow.release.set()
        worker.stop()
        await asyncio.wait_for(running, 10)
        await engine.dispose()


async def _true(value: bool) -> bool:
    return value


async def eventually(condition: Callable[[], Awaitable[bool]], seconds: float = 10.0) -> bool:
    for _ in range(int(seconds / 0.01)):
        if await condition():
            return True
        await asyncio.sleep(0.01)
    return False
