"""An operation's lookups of an agency that batches (a SQL agency, here its
in-memory fake) go to it as one call; each still gets its own answer or
error, and its own data-access row before any data is handed out."""

from __future__ import annotations

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
from connectors.base import BackendRequest
from connectors.errors import BackendUnavailable
from connectors.memory import BatchingMemoryConnector, MemoryConnector
from gateway.app import create_app
from gateway.catalog.loader import load_catalog
from gateway.db.tables import AccessEvent
from gateway.settings import ROOT, Settings
from legacy.samples import CITIZENS, sample_form
from schema.lookup_batches import LookupBatches, PendingLookup
from tests.auth.conftest import FORM_QUERY, NO_RATE_LIMITS
from tests.support.gateway import Api, token_for
from tests.test_api import fake_answers

NOWHERE = "0000000"  # a property number the fake register does not hold
RECORD = "cityPropertyRecord(input: {propertyNumber: $%s}) { districtName areaM2 }"


def query(*names: str, other_agency: bool = False) -> str:
    """One PROP lookup per name, aliased by it; and URB's, which does not batch."""
    variables = ", ".join(f"${name}: String!" for name in names)
    fields = " ".join(f"{name}: {RECORD % name}" for name in names)
    if other_agency:
        variables += ", $urbCode: ID!, $urbForm: JSON!"
        fields += " urb: lookup(serviceCode: $urbCode, input: $urbForm)"
    return f"query Records({variables}) {{ {fields} }}"


@dataclasses.dataclass
class Rig:
    citizen: Api
    prop: BatchingMemoryConnector
    urb: MemoryConnector
    urb_lookup: dict[str, Any]
    """Variables for ``query(..., other_agency=True)``."""
    app: Any

    async def rows(self) -> int:
        async with self.app.state.sessions() as session:
            return int(await session.scalar(select(func.count()).select_from(AccessEvent)) or 0)


@contextlib.asynccontextmanager
async def _rig(database_url: str, tmp_path: Path) -> AsyncIterator[Rig]:
    catalog = load_catalog(ROOT / "catalog")
    agencies = fake_answers(catalog)

    def register(request: BackendRequest) -> dict[str, object] | None:
        if request.payload["PROP_NO"] == NOWHERE:
            return None
        return agencies["PROP"].answer(request)

    prop = BatchingMemoryConnector("PROP", register)
    settings = Settings(var_dir=tmp_path, database_url=database_url, worker=False,
                        rate_limits=NO_RATE_LIMITS, breaker_threshold=2)  # fmt: skip
    app = create_app(settings, connector_overrides={**agencies, "PROP": prop})
    transport = httpx.ASGITransport(app=app)
    async with (
        app.router.lifespan_context(app),
        httpx.AsyncClient(transport=transport, base_url="http://khaalga.test") as http,
    ):
        code = next(s.code for s in catalog.services()
                    if s.agency_code == "URB" and s.kind.value == "LOOKUP")  # fmt: skip
        fields = (await Api(http).data(FORM_QUERY, {"code": code}))["service"]["form"]["fields"]
        urb = {"urbCode": code, "urbForm": sample_form(fields, CITIZENS[0])}
        citizen = Api(http, token_for(settings, Principal(
            PrincipalKind.CITIZEN, CITIZENS[0], None, frozenset({"applications"}))))  # fmt: skip
        yield Rig(citizen, prop, agencies["URB"], urb, app)


@pytest.fixture
async def rig(database_url: str, tmp_path: Path) -> AsyncIterator[Rig]:
    async with _rig(database_url, tmp_path) as rig:
        yield rig


async def test_lookups_of_one_agency_go_as_one_call(rig: Rig) -> None:
    numbers = {"a": "1000001", "b": "1000002", "c": "1000003"}
    alone = {}
    for name, number in numbers.items():
        body = await rig.citizen.gql(query(name), {name: number})
        alone[name] = body["data"][name]
    assert len(rig.prop.batches) == 0 and len(rig.prop.calls) == 3  # one at a time: no batch
    rows = await rig.rows()

    body = await rig.citizen.gql(query(*numbers, other_agency=True), {**numbers, **rig.urb_lookup})

    assert "errors" not in body, body
    assert {name: body["data"][name] for name in numbers} == alone  # each its own answer
    [batch] = rig.prop.batches
    assert [request.payload["PROP_NO"] for request in batch] == list(numbers.values())
    assert len(rig.urb.calls) == 1 and body["data"]["urb"]  # URB's back end does not batch
    assert await rig.rows() == rows + 4  # a row per lookup, URB's included


async def test_the_same_lookup_twice_is_sent_and_logged_once(rig: Rig) -> None:
    body = await rig.citizen.gql(
        query("a", "b", "c"), {"a": "1000001", "b": "1000001", "c": "1000002"}
    )
    assert "errors" not in body, body
    assert body["data"]["a"] == body["data"]["b"] != body["data"]["c"]
    [batch] = rig.prop.batches
    assert [request.payload["PROP_NO"] for request in batch] == ["1000001", "1000002"]
    assert await rig.rows() == 2


async def test_each_lookup_gets_its_own_error(rig: Rig) -> None:
    body = await rig.citizen.gql(query("a", "b"), {"a": NOWHERE, "b": "1000002"})
    assert body["data"]["a"] is None and body["data"]["b"]["districtName"]
    [error] = body["errors"]
    assert error["path"] == ["a"] and error["extensions"]["code"] == "NOT_FOUND"
    assert len(rig.prop.batches) == 1
    assert await rig.rows() == 2  # both were sent


async def test_a_failed_call_fails_every_lookup_in_it_and_they_are_logged(rig: Rig) -> None:
    rig.prop.fail_with = BackendUnavailable("PROP", "database unavailable")
    body = await rig.citizen.gql(query("a", "b"), {"a": "1000001", "b": "1000002"})
    assert body["data"] == {"a": None, "b": None}  # nullable fields: each fails alone
    assert [e["extensions"]["code"] for e in body["errors"]] == ["AGENCY_UNAVAILABLE"] * 2
    # Retried as a whole (a LOOKUP is idempotent): each attempt one call of two lookups.
    assert [len(batch) for batch in rig.prop.batches] == [2] * len(rig.prop.batches)
    assert len(rig.prop.batches) >= 2
    assert await rig.rows() == 2  # the agency had them: logged, once


async def test_a_batch_refused_by_the_open_breaker_is_neither_sent_nor_logged(rig: Rig) -> None:
    rig.prop.fail_with = BackendUnavailable("PROP", "database unavailable")
    variables = {"a": "1000001", "b": "1000002"}
    await rig.citizen.gql(query("a", "b"), variables)  # two failed calls open the breaker
    sent, rows = len(rig.prop.batches), await rig.rows()
    assert sent == 2 and rows == 2

    body = await rig.citizen.gql(query("a", "b"), variables)
    assert [e["extensions"]["code"] for e in body["errors"]] == ["AGENCY_UNAVAILABLE"] * 2
    assert len(rig.prop.batches) == sent and await rig.rows() == rows


async def test_without_the_rows_no_lookup_of_the_batch_gets_data(
    rig: Rig, monkeypatch: pytest.MonkeyPatch
) -> None:
    async def broken(*_: object) -> None:
        raise OperationalError("INSERT", {}, ConnectionError("database is locked"))

    monkeypatch.setattr(rig.app.state.services.access_log, "record", broken)
    body = await rig.citizen.gql(query("a", "b"), {"a": "1000001", "b": "1000002"})
    assert body["data"] == {"a": None, "b": None}  # nullable fields: each fails alone
    assert [e["extensions"]["code"] for e in body["errors"]] == ["UNAVAILABLE"] * 2
    assert len(rig.prop.batches) == 1  # the agency was asked; its answers were not shown


async def test_a_lone_lookup_of_an_agency_does_not_wait_for_a_batch(
    rig: Rig, monkeypatch: pytest.MonkeyPatch
) -> None:
    # A batch starts a turn of the event loop later; alone, a lookup gains nothing by it.
    batched: list[str] = []
    through_loader = LookupBatches.lookup

    async def spied(self: LookupBatches, registry: Any, pending: PendingLookup) -> Any:
        batched.append(pending.service.code)
        return await through_loader(self, registry, pending)

    monkeypatch.setattr(LookupBatches, "lookup", spied)
    body = await rig.citizen.gql(query("a", other_agency=True), {"a": "1000001", **rig.urb_lookup})
    assert "errors" not in body, body
    assert batched == [] and rig.prop.batches == [] and len(rig.prop.calls) == 1

    body = await rig.citizen.gql(query("a", "b"), {"a": "1000001", "b": "1000002"})
    assert "errors" not in body, body
    assert batched == ["PROP-001", "PROP-001"] and len(rig.prop.batches) == 1


async def test_lookups_in_fragments_and_by_service_code_are_counted(rig: Rig) -> None:
    document = """query Mixed($c: ID!, $i: JSON!, $n: String!) {
      ...Typed
      ... on Query { generic: lookup(serviceCode: $c, input: $i) }
    }
    fragment Typed on Query { typed: cityPropertyRecord(input: {propertyNumber: $n}) { areaM2 } }"""
    variables = {"c": "PROP-001", "i": {"propertyNumber": "1000001"}, "n": "1000002"}
    body = await rig.citizen.gql(document, variables)
    assert "errors" not in body, body
    [batch] = rig.prop.batches
    assert sorted(request.payload["PROP_NO"] for request in batch) == ["1000001", "1000002"]
