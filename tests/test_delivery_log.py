"""The delivery worker's entries in the data-access log, and sandbox rows,
on SQLite and PostgreSQL: every attempt that may have handed the form to
the agency is logged; one refused before sending is not; sandbox rows reach
only the sandbox registry and are never logged."""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass

import pytest
from sqlalchemy import select

from auth.audit.model import ActorKind, Purpose
from auth.audit.record import access_by
from auth.audit.verify import verify
from auth.principal import Principal, PrincipalKind
from connectors.delivery import DeliveryWorker, outbox_backlog
from connectors.errors import BackendRejected, BackendTimeout, BackendUnavailable, ConnectorError
from connectors.memory import MemoryConnector, SandboxConnector, sandbox_registry
from connectors.registry import ConnectorRegistry
from gateway.applications import ApplicationStore, Status
from gateway.catalog.loader import Catalog
from gateway.db.engine import create_engine, session_factory
from gateway.db.tables import AccessEvent
from tests.factories import agency
from tests.support.delivery import DeliveryRig

AGENCY = agency("TEST")
CATALOG = Catalog((AGENCY,))
SERVICE = AGENCY.services[0]
CITIZEN = "УБ99010112"
FORM = {"registerNumber": CITIZEN, "phone": "99112233", "area": 10, "district": "KHAN_UUL"}


@dataclass
class Rig(DeliveryRig):
    sandbox: ConnectorRegistry

    def worker(self, sandbox: bool = True) -> DeliveryWorker:
        return DeliveryWorker(
            self.store.sessions, CATALOG, self.registry, backoff_base=0.01,
            sandbox=self.sandbox if sandbox else None,
        )  # fmt: skip

    async def log(self) -> list[AccessEvent]:
        async with self.store.sessions() as session:
            return list(
                (await session.scalars(select(AccessEvent).order_by(AccessEvent.seq))).all()
            )

    def sandbox_requests(self) -> int:
        inner = self.sandbox.connector("TEST").inner
        assert isinstance(inner, SandboxConnector)
        return inner.requests


@pytest.fixture
async def rig(database_url: str) -> AsyncIterator[Rig]:
    engine = create_engine(database_url)
    backend = MemoryConnector("TEST", lambda _request: {})
    # A breaker that opens on the first transient failure.
    registry = ConnectorRegistry(CATALOG, {}, overrides={"TEST": backend}, breaker_threshold=1)
    store = ApplicationStore(session_factory(engine))
    yield Rig(store, backend, registry, sandbox_registry(CATALOG))
    await store.aclose()
    await engine.dispose()


@pytest.mark.parametrize(
    "failure",
    [
        BackendTimeout("TEST", "no answer in time"),  # the agency may have filed it
        BackendUnavailable("TEST", "HTTP 503"),
        BackendRejected("TEST", "rule broken"),  # it read the form to refuse it
    ],
    ids=lambda failure: type(failure).__name__,
)
async def test_a_failed_attempt_after_sending_is_logged(rig: Rig, failure: ConnectorError) -> None:
    await rig.store.submit(CITIZEN, SERVICE, FORM, None)
    rig.backend.fail_with = failure
    await rig.worker().deliver_due()
    assert len(rig.backend.calls) == 1
    (attempt,) = await rig.log()
    assert (attempt.citizen, attempt.actor_kind, attempt.purpose) == (
        CITIZEN, ActorKind.GATEWAY, Purpose.DELIVERY_ATTEMPT,
    )  # fmt: skip
    assert (attempt.agency, attempt.service_code) == ("TEST", SERVICE.code)
    assert attempt.fields == sorted(FORM)
    assert (await rig.outbox()).attempts == 1
    assert (await verify(rig.store.sessions)).ok


async def test_every_attempt_is_logged_then_the_delivery(rig: Rig) -> None:
    app = await rig.store.submit(CITIZEN, SERVICE, FORM, None)
    rig.backend.fail_with = BackendTimeout("TEST", "no answer in time")
    worker = rig.worker()
    await worker.deliver_due()
    rig.backend.fail_with = None
    # The timeout opened the rig's one-failure breaker; a fresh registry's
    # breaker has not seen it (breakers are tested on their own).
    rig.registry = ConnectorRegistry(CATALOG, {}, overrides={"TEST": rig.backend})
    worker.registry = rig.registry
    await rig.due_again()
    assert await worker.deliver_due() == 1
    assert (await rig.app(app.id)).status == Status.DELIVERED
    purposes = [row.purpose for row in await rig.log()]
    assert purposes == [Purpose.DELIVERY_ATTEMPT, Purpose.DELIVERY]
    assert (await verify(rig.store.sessions)).ok


async def test_an_attempt_refused_before_sending_is_not_logged(rig: Rig) -> None:
    await rig.store.submit(CITIZEN, SERVICE, FORM, None)
    rig.backend.fail_with = BackendUnavailable("TEST", "HTTP 503")
    worker = rig.worker()
    await worker.deliver_due()  # sent, failed: logged, and the breaker opens
    await rig.due_again()
    await worker.deliver_due()  # the open breaker refuses: nothing is sent
    item = await rig.outbox()
    assert item.attempts == 2 and (item.last_error or "").startswith("CircuitOpen")
    assert len(rig.backend.calls) == 1
    assert [row.purpose for row in await rig.log()] == [Purpose.DELIVERY_ATTEMPT]


@pytest.mark.parametrize("explicit", [True, False], ids=["given", "default"])
async def test_a_sandbox_row_reaches_only_the_sandbox(rig: Rig, explicit: bool) -> None:
    app = await rig.store.submit(CITIZEN, SERVICE, FORM, None, submitted_by="app-s", sandbox=True)
    assert (await rig.outbox()).sandbox
    assert await outbox_backlog(rig.store.sessions) == {}  # not the agency's backlog
    worker = rig.worker(sandbox=explicit)
    assert await worker.deliver_due() == 1
    delivered = await rig.app(app.id)
    assert delivered.status == Status.DELIVERED
    assert (delivered.reference or "").startswith("SANDBOX-TEST-")
    assert delivered.next_poll_at is None  # no agency behind it to poll
    assert rig.backend.calls == []
    assert rig.sandbox_requests() == (1 if explicit else 0)
    assert await rig.log() == []


async def test_sandbox_rows_are_never_logged_even_when_read(rig: Rig) -> None:
    from schema.access_log import record_application_reads
    from schema.context import Context, Services

    app = await rig.store.submit(CITIZEN, SERVICE, FORM, None, submitted_by="app-s", sandbox=True)
    real = await rig.store.submit(CITIZEN, SERVICE, FORM, None)
    services = Services(catalog=CATALOG, store=rig.store, registry=rig.registry)
    operator = Principal(PrincipalKind.OPERATOR, "operator-1")
    stored = [await rig.store.get(operator, app.id), await rig.store.get(operator, real.id)]
    await record_application_reads(
        Context(operator, services), [a for a in stored if a is not None], with_form=True
    )
    (row,) = await rig.log()
    assert (row.purpose, row.actor) == (Purpose.OPERATIONS, "operator-1")


async def test_an_app_filing_logs_every_access_it_is_given(rig: Rig) -> None:
    app_principal = Principal(PrincipalKind.APP, "app-a", None, frozenset())
    accesses = [
        access_by(app_principal, citizen, agency="TEST", service_code=SERVICE.code,
                  fields=FORM, purpose=Purpose.SUBMISSION)
        for citizen in (CITIZEN, "ТА85122304")
    ]  # fmt: skip
    app = await rig.store.submit(CITIZEN, SERVICE, FORM, "k", accesses, submitted_by="app-a")
    assert (await rig.app(app.id)).submitted_by == "app-a"
    assert [(r.citizen, r.actor) for r in await rig.log()] == [
        (CITIZEN, "app-a"), ("ТА85122304", "app-a"),
    ]  # fmt: skip
    # The same key from the citizen is another namespace: another application.
    own = await rig.store.submit(CITIZEN, SERVICE, FORM, "k")
    assert own.id != app.id
    assert (await rig.store.submit(CITIZEN, SERVICE, FORM, "k", submitted_by="app-a")).id == app.id
