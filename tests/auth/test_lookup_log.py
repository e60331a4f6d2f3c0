"""A lookup's data-access row is written while the agency answers: it is
there before the data comes back, a request that reached the agency is
logged whatever came back, one refused before sending is not, and without
the row there is no data."""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from sqlalchemy import func, select
from sqlalchemy.exc import OperationalError

from auth.principal import Principal, PrincipalKind
from connectors.base import BackendRequest, BackendResponse, Connector
from connectors.errors import BackendUnavailable
from gateway.app import create_app
from gateway.catalog.loader import load_catalog
from gateway.db.tables import AccessEvent
from gateway.settings import ROOT, Settings
from legacy.samples import CITIZENS, sample_form
from schema.limits.config import OperationLimits
from tests.auth.conftest import FORM_QUERY, NO_RATE_LIMITS
from tests.support.gateway import Api, token_for
from tests.test_api import fake_answers

LOOKUP = "query($c: ID!, $i: JSON!) { lookup(serviceCode: $c, input: $i) }"
AGENCY = "URB"


class HeldAgency(Connector):
    """Answers like the fake agencies, once let go; or fails as told."""

    def __init__(self, answers: Connector) -> None:
        self.answers = answers
        self.go = asyncio.Event()
        self.arrived = asyncio.Event()
        self.fail_with: Exception | None = None
        self.calls = 0

    async def send(self, request: BackendRequest) -> BackendResponse:
        self.calls += 1
        self.arrived.set()
        await self.go.wait()
        if self.fail_with is not None:
            raise self.fail_with
        return await self.answers.send(request)

    async def aclose(self) -> None:
        pass


@dataclasses.dataclass
class Rig:
    citizen: Api
    agency: HeldAgency
    app: Any
    code: str
    form: dict[str, Any]

    async def rows(self) -> int:
        async with self.app.state.sessions() as session:
            return int(await session.scalar(select(func.count()).select_from(AccessEvent)) or 0)

    async def lookup(self) -> dict[str, Any]:
        return await self.citizen.gql(LOOKUP, {"c": self.code, "i": self.form})


@contextlib.asynccontextmanager
async def _rig(
    database_url: str, tmp_path: Path, limits: OperationLimits | None = None
) -> AsyncIterator[Rig]:
    catalog = load_catalog(ROOT / "catalog")
    agencies: dict[str, Connector] = dict(fake_answers(catalog))
    held = agencies[AGENCY] = HeldAgency(agencies[AGENCY])
    settings = Settings(var_dir=tmp_path, database_url=database_url, worker=False,
                        rate_limits=NO_RATE_LIMITS, breaker_threshold=2,
                        limits=limits or OperationLimits())  # fmt: skip
    app = create_app(settings, connector_overrides=agencies)
    code = next(
        s.code for s in catalog.services() if s.agency_code == AGENCY and s.kind.value == "LOOKUP"
    )
    transport = httpx.ASGITransport(app=app)
    async with (
        app.router.lifespan_context(app),
        httpx.AsyncClient(transport=transport, base_url="http://khaalga.test") as http,
    ):
        fields = (await Api(http).data(FORM_QUERY, {"code": code}))["service"]["form"]["fields"]
        citizen = Api(http, token_for(settings, Principal(
            PrincipalKind.CITIZEN, CITIZENS[0], None, frozenset({"applications"}))))  # fmt: skip
        yield Rig(citizen, held, app, code, sample_form(fields, CITIZENS[0]))


@pytest.fixture
async def rig(database_url: str, tmp_path: Path) -> AsyncIterator[Rig]:
    async with _rig(database_url, tmp_path) as rig:
        yield rig


async def test_the_row_is_written_while_the_agency_answers(rig: Rig) -> None:
    pending = asyncio.create_task(rig.lookup())
    await rig.agency.arrived.wait()
    for _ in range(100):  # the row's commit runs while the agency holds the answer
        if await rig.rows() == 1:
            break
        await asyncio.sleep(0.01)
    assert await rig.rows() == 1 and not pending.done()
    rig.agency.go.set()
    body = await pending
    assert "errors" not in body and body["data"]["lookup"]
    assert await rig.rows() == 1


async def test_a_request_the_agency_received_is_logged_even_without_an_answer(rig: Rig) -> None:
    rig.agency.go.set()
    rig.agency.fail_with = BackendUnavailable(AGENCY, "HTTP 503")
    body = await rig.lookup()
    assert body["data"] is None and body["errors"][0]["extensions"]["code"] == "AGENCY_UNAVAILABLE"
    assert await rig.rows() == 1


async def test_a_request_refused_before_sending_is_not_logged(rig: Rig) -> None:
    rig.agency.go.set()
    rig.agency.fail_with = BackendUnavailable(AGENCY, "HTTP 503")
    await rig.lookup()  # sent, and retried: two failures open the breaker
    assert rig.agency.calls == 2 and await rig.rows() == 1  # one lookup, one row
    body = await rig.lookup()  # refused by the open breaker: nothing reaches the agency
    assert body["errors"][0]["extensions"]["code"] == "AGENCY_UNAVAILABLE"
    assert rig.agency.calls == 2 and await rig.rows() == 1


async def test_a_lookup_cut_off_still_reports_a_row_that_failed(
    database_url: str, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    # The agency never answers, the time budget cuts the lookup off, and
    # only then does the row's write fail: the log says so (the class only).
    async with _rig(database_url, tmp_path, OperationLimits(seconds=1)) as rig:
        log = rig.app.state.services.access_log
        failed = asyncio.Event()

        async def broken(batch: object) -> None:
            await asyncio.sleep(1.5)  # past the budget
            failed.set()
            raise OperationalError("INSERT", {}, ConnectionError("disk I/O error"))

        log._commit._commit = broken
        body = await rig.lookup()
        assert body["errors"][0]["extensions"]["code"] == "OPERATION_LIMIT"
        await asyncio.wait_for(failed.wait(), 5)
        await asyncio.sleep(0.01)  # the done-callbacks
    [record] = [r for r in caplog.records if r.name == "khaalga.group_commit"]
    assert record.levelname == "ERROR" and "OperationalError" in record.getMessage()
    assert CITIZENS[0] not in caplog.text


async def test_a_lookup_that_fails_unforeseen_still_reports_a_row_that_failed(
    rig: Rig, caplog: pytest.LogCaptureFixture
) -> None:
    # Not a ConnectorError (a bug, say): the row is not awaited on that way
    # out, so its failure reaches the log rather than no one.
    async def broken(batch: object) -> None:
        raise OperationalError("INSERT", {}, ConnectionError("disk I/O error"))

    rig.app.state.services.access_log._commit._commit = broken
    rig.agency.fail_with = RuntimeError("a bug in a connector")
    rig.agency.go.set()
    body = await rig.lookup()
    assert body["data"] is None
    await asyncio.sleep(0.01)  # the done-callbacks
    [record] = [r for r in caplog.records if r.name == "khaalga.group_commit"]
    assert record.levelname == "ERROR" and "OperationalError" in record.getMessage()


async def test_without_the_row_there_is_no_data(rig: Rig, monkeypatch: pytest.MonkeyPatch) -> None:
    async def broken(*_: object) -> None:
        raise OperationalError("INSERT", {}, ConnectionError("database is locked"))

    monkeypatch.setattr(rig.app.state.services.access_log, "record", broken)
    rig.agency.go.set()
    body = await rig.lookup()
    assert body["data"] is None
    assert body["errors"][0]["extensions"]["code"] == "UNAVAILABLE"
    assert rig.agency.calls == 1  # the agency was asked; its answer was not shown
