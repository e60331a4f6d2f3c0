"""End to end on the embedded default: the real app served over HTTP, the
delivery worker running, and all 13 simulated agencies on loopback."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest

from connectors.config import Timeouts
from gateway.app import create_app
from gateway.catalog.loader import Catalog
from gateway.catalog.model import ServiceKind
from gateway.db.migrate import upgrade_async
from gateway.settings import ROOT, Settings
from legacy.base import Simulator
from legacy.samples import CITIZENS, sample_form
from legacy.topology import embedded_endpoints
from tests.support.gateway import Api, citizen_token, operator_token, served
from tests.support.simulators import running_simulators

pytestmark = pytest.mark.slow
ALICE = CITIZENS[0]
INTROSPECT = """{ __type(name: "%s") {
  fields { name args { name type { kind ofType { name } } } } } }"""
FORM_QUERY = """query($code: ID!) { service(code: $code) { graphqlField form { fields {
  name type required pattern min max maxLength options { value } } } } }"""


@dataclass
class Embedded:
    api: Api
    settings: Settings
    simulators: dict[str, Simulator]

    def as_citizen(self, register_number: str = ALICE) -> Api:
        return self.api.as_(citizen_token(self.settings, register_number))


@pytest.fixture
async def embedded(tmp_path: Path, catalog: Catalog) -> AsyncIterator[Embedded]:
    workdir = tmp_path / "legacy"
    async with running_simulators(catalog, workdir, review_seconds=0.5) as (simulators, ports):
        settings = Settings(
            var_dir=tmp_path,
            catalog_dir=ROOT / "catalog",
            backends=embedded_endpoints(catalog, workdir, ports),
            timeouts=Timeouts(connect=1.0, read=3.0, total=5.0),
            delivery_poll=0.05,
            status_poll=0.2,
            breaker_threshold=3,
            breaker_ttl=1.0,
            rate_limits="",  # every service is exercised; limits are tested on their own
        )
        await upgrade_async(settings.database_url)
        async with (
            served(create_app(settings)) as base_url,
            httpx.AsyncClient(base_url=base_url, timeout=30) as http,
        ):
            yield Embedded(Api(http), settings, {s.agency.code: s for s in simulators})


async def _form(api: Api, code: str) -> tuple[str, dict[str, Any]]:
    service = (await api.data(FORM_QUERY, {"code": code}))["service"]
    return service["graphqlField"], sample_form(service["form"]["fields"], ALICE)


async def _input_types(api: Api, root: str) -> dict[str, str]:
    data = await api.data(INTROSPECT % root)
    return {
        f["name"]: next(a["type"]["ofType"]["name"] for a in f["args"] if a["name"] == "input")
        for f in data["__type"]["fields"]
        if any(a["name"] == "input" for a in f["args"])
    }


async def test_every_lookup_service_answers_from_its_agency(
    embedded: Embedded, catalog: Catalog
) -> None:
    alice = embedded.as_citizen()
    inputs = await _input_types(embedded.api, "Query")
    lookups = [s for s in catalog.services() if s.kind is ServiceKind.LOOKUP]
    for service in lookups:
        field, form = await _form(embedded.api, service.code)
        selection = " ".join(f.name for f in service.result)
        query = f"query($i: {inputs[field]}!) {{ {field}(input: $i) {{ {selection} }} }}"
        result = (await alice.data(query, {"i": form}))[field]
        assert result is not None, service.code
        assert set(result) == {f.name for f in service.result}


async def test_every_application_reaches_its_agency_once_with_a_reference(
    embedded: Embedded, catalog: Catalog
) -> None:
    alice = embedded.as_citizen()
    submit = """mutation($c: ID!, $f: JSON!, $k: String) { submitApplication(serviceCode: $c,
      form: $f, idempotencyKey: $k) { application { id status } } }"""
    submitted: dict[str, str] = {}
    for service in catalog.services():
        if service.kind is ServiceKind.APPLICATION:
            _, form = await _form(embedded.api, service.code)
            payload = await alice.data(submit, {"c": service.code, "f": form, "k": service.code})
            submitted[payload["submitApplication"]["application"]["id"]] = service.code
    query = "query($id: ID!) { application(id: $id) { status reference history { status } } }"
    pending = set(submitted)
    references: dict[str, str] = {}
    for _ in range(300):
        for app_id in list(pending):
            app = (await alice.data(query, {"id": app_id}))["application"]
            if app["reference"] and app["status"] != "SUBMITTED":
                references[app_id] = app["reference"]
                pending.discard(app_id)
        if not pending:
            break
        await asyncio.sleep(0.1)
    assert not pending, sorted(submitted[a] for a in pending)
    for agency, simulator in embedded.simulators.items():
        filings = simulator.filings()
        mine = {submitted[a]: r for a, r in references.items() if submitted[a].startswith(agency)}
        assert sorted(f.reference for f in filings) == sorted(mine.values()), agency
        assert len({f.idempotency_key for f in filings}) == len(filings)


async def test_status_changes_flow_back_into_history(embedded: Embedded, catalog: Catalog) -> None:
    alice = embedded.as_citizen()
    submit = """mutation($c: ID!, $f: JSON!) { submitApplication(serviceCode: $c, form: $f) {
      application { id } } }"""
    query = "query($id: ID!) { application(id: $id) { status history { status note } } }"
    ids = []
    for kind in ("SOAP", "REST", "SQL", "FILE"):
        service = next(
            s for s in catalog.services()
            if s.kind is ServiceKind.APPLICATION
            and catalog.agency(s.agency_code).backend.kind.value == kind  # type: ignore[union-attr]
        )  # fmt: skip
        _, form = await _form(embedded.api, service.code)
        ids.append(
            (await alice.data(submit, {"c": service.code, "f": form}))["submitApplication"][
                "application"
            ]["id"]
        )
    finals: dict[str, list[str]] = {}
    for _ in range(200):
        for app_id in ids:
            app = (await alice.data(query, {"id": app_id}))["application"]
            if app["status"] in ("REJECTED", "ISSUED"):
                finals[app_id] = [h["status"] for h in app["history"]]
        if len(finals) == len(ids):
            break
        await asyncio.sleep(0.1)
    assert len(finals) == len(ids)
    for history in finals.values():
        assert history[:2] == ["SUBMITTED", "DELIVERED"]
        assert history[-1] in ("REJECTED", "ISSUED")


async def test_a_failing_agency_does_not_take_the_others_down(
    embedded: Embedded, catalog: Catalog
) -> None:
    alice = embedded.as_citizen()
    inputs = await _input_types(embedded.api, "Query")
    healthy = next(
        s for s in catalog.services() if s.kind is ServiceKind.LOOKUP and s.agency_code == "URB"
    )
    failing = next(
        s for s in catalog.services() if s.kind is ServiceKind.LOOKUP and s.agency_code == "TAX"
    )
    embedded.simulators["TAX"].faults.down = True
    await embedded.simulators["TAX"].apply_faults()
    (ok_field, ok_form), (bad_field, bad_form) = [
        await _form(embedded.api, s.code) for s in (healthy, failing)
    ]
    query = (
        f"query($a: {inputs[ok_field]}!, $b: {inputs[bad_field]}!) {{ "
        f"{ok_field}(input: $a) {{ {healthy.result[0].name} }} "
        f"{bad_field}(input: $b) {{ {failing.result[0].name} }} }}"
    )
    body = await alice.gql(query, {"a": ok_form, "b": bad_form})
    assert body["data"][ok_field] is not None
    assert body["data"][bad_field] is None
    [error] = body["errors"]
    assert error["extensions"] == {"code": "AGENCY_UNAVAILABLE", "agency": "TAX"}
    assert error["path"] == [bad_field]


async def test_agency_health_shows_all_thirteen(embedded: Embedded) -> None:
    operator = embedded.api.as_(operator_token(embedded.settings))
    query = """{ agencyHealth { agency { code } backendKind status breakerState lastError
      latencyP50Ms latencyP95Ms } }"""
    health = (await operator.data(query))["agencyHealth"]
    assert len(health) == 13
    kinds: dict[str, int] = {}
    for entry in health:
        kinds[entry["backendKind"]] = kinds.get(entry["backendKind"], 0) + 1
        assert (entry["status"], entry["breakerState"]) == ("UP", "CLOSED")
    assert kinds == {"SOAP": 4, "REST": 4, "SQL": 3, "FILE": 2}
