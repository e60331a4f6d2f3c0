"""The contract every connector kind honours, against its real simulator.

One parametrised fixture over every back-end kind: a new kind added to
``connectors.kinds`` and ``legacy.kinds`` inherits this whole suite.
"""

from __future__ import annotations

import asyncio
import datetime as dt
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from connectors.base import Action, BackendRequest, Connector
from connectors.config import Timeouts
from connectors.errors import BackendRejected, PermanentError, TransientError
from connectors.kinds import connector_class
from connectors.mapping import from_backend, to_backend
from gateway.catalog.model import Agency, BackendKind
from legacy.base import Simulator
from legacy.kinds import simulator_class
from legacy.samples import CITIZENS
from tests.factories import agency
from tests.support.gateway import free_port

DIALECTS = {
    BackendKind.REST: {"date_format": "%Y.%m.%d", "amounts_as_strings": True, "paging": "page"},
    BackendKind.SQL: {
        "status_codes": {"10": "DELIVERED", "20": "IN_REVIEW", "25": "NEEDS_INFO",
                         "30": "APPROVED", "40": "REJECTED", "50": "ISSUED"},
        "reference_prefix": "TEST",
    },
    BackendKind.FILE: {"format": "fixed", "encoding": "cp1251", "field_width": 40},
    BackendKind.SOAP: {"namespace": "urn:khaalga:legacy:test"},
}  # fmt: skip
FORM = {"registerNumber": CITIZENS[0], "phone": "99112233", "area": 12, "district": "KHAN_UUL",
        "moveIn": "2026-03-01", "note": "Тест"}  # fmt: skip


@dataclass
class Backend:
    agency: Agency
    simulator: Simulator
    connector: Connector

    def request(self, action: Action, **kwargs: object) -> BackendRequest:
        service = self.agency.services[1 if action is Action.LOOKUP else 0]
        form = {"registerNumber": CITIZENS[0]} if action is Action.LOOKUP else FORM
        return BackendRequest(
            agency=self.agency.code,
            service_code=service.code,
            operation=service.binding.operation,
            action=action,
            payload=to_backend(service, form) if action is not Action.STATUS else {},
            **kwargs,  # type: ignore[arg-type]
        )

    async def restart(self) -> None:
        await self.simulator.stop()
        self.simulator = type(self.simulator)(
            self.agency, self.simulator.workdir, self.simulator.port, self.simulator.review_seconds
        )
        await self.simulator.start()


@pytest.fixture(params=list(BackendKind), ids=lambda kind: kind.value)
async def backend(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[Backend]:
    kind: BackendKind = request.param
    test_agency = agency("TEST", kind.value, DIALECTS[kind])
    simulator = simulator_class(kind)(test_agency, tmp_path / "agency", free_port(), 0.3)
    await simulator.start()
    connector = connector_class(kind)(  # type: ignore[call-arg]
        test_agency, simulator.endpoint(), Timeouts(connect=1.0, read=2.0, total=3.0)
    )
    rig = Backend(test_agency, simulator, connector)
    try:
        yield rig
    finally:
        await connector.aclose()
        await rig.simulator.stop()


async def test_lookup_answers_typed_values_deterministically(backend: Backend) -> None:
    service = backend.agency.services[1]
    first = await backend.connector.send(backend.request(Action.LOOKUP))
    again = await backend.connector.send(backend.request(Action.LOOKUP))
    values = from_backend(backend.agency, service, first.data)
    assert isinstance(values["validUntil"], dt.date)
    assert isinstance(values["due"], int)
    assert isinstance(values["active"], bool)
    assert from_backend(backend.agency, service, again.data) == values


async def test_submit_files_once_per_idempotency_key(backend: Backend) -> None:
    first = await backend.connector.send(backend.request(Action.SUBMIT, idempotency_key="k-1"))
    again = await backend.connector.send(backend.request(Action.SUBMIT, idempotency_key="k-1"))
    other = await backend.connector.send(backend.request(Action.SUBMIT, idempotency_key="k-2"))
    assert first.reference and first.reference == again.reference
    assert other.reference and other.reference != first.reference
    assert sorted(f.idempotency_key for f in backend.simulator.filings()) == ["k-1", "k-2"]


async def test_status_moves_through_review_to_a_final_state(backend: Backend) -> None:
    filed = await backend.connector.send(backend.request(Action.SUBMIT, idempotency_key="k-3"))
    seen = []
    for _ in range(60):
        status = await backend.connector.send(
            backend.request(Action.STATUS, reference=filed.reference)
        )
        if not seen or seen[-1] != status.status:
            seen.append(status.status)
        if status.status in ("REJECTED", "ISSUED"):
            break
        await asyncio.sleep(0.1)
    assert seen[0] in ("DELIVERED", "IN_REVIEW")
    assert seen[-1] in ("REJECTED", "ISSUED")


async def test_unknown_reference_is_rejected(backend: Backend) -> None:
    with pytest.raises(BackendRejected):
        await backend.connector.send(backend.request(Action.STATUS, reference="TEST-1999-999999"))


async def test_an_agency_that_is_down_is_a_transient_error(backend: Backend) -> None:
    backend.simulator.faults.down = True
    await backend.simulator.apply_faults()
    with pytest.raises(TransientError):
        await backend.connector.send(backend.request(Action.SUBMIT, idempotency_key="k-4"))
    backend.simulator.faults.down = False
    await backend.simulator.apply_faults()
    assert [f.idempotency_key for f in backend.simulator.filings()] in ([], ["k-4"])


async def test_garbage_is_a_permanent_error(backend: Backend) -> None:
    backend.simulator.faults.garbage = True
    await backend.simulator.apply_faults()
    service = backend.agency.services[1]
    with pytest.raises(PermanentError):
        answer = await backend.connector.send(backend.request(Action.LOOKUP))
        from_backend(backend.agency, service, answer.data)


async def test_records_survive_a_simulator_restart(backend: Backend) -> None:
    filed = await backend.connector.send(backend.request(Action.SUBMIT, idempotency_key="k-5"))
    await backend.restart()
    again = await backend.connector.send(backend.request(Action.SUBMIT, idempotency_key="k-5"))
    assert again.reference == filed.reference
    assert len(backend.simulator.filings()) == 1


async def test_aclose_twice_is_harmless(backend: Backend) -> None:
    await backend.connector.aclose()
    await backend.connector.aclose()
