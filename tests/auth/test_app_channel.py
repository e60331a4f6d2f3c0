"""Third-party apps: what their scopes grant, whose data they touch, how
it is logged, and the sandbox that keeps them away from the agencies."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
from sqlalchemy import func, select

from auth.principal import Principal, PrincipalKind
from auth.tokens import InvalidToken, principal_of
from connectors.memory import MemoryConnector, SandboxConnector
from connectors.registry import ConnectorRegistry
from gateway.db.tables import AccessEvent, Application
from legacy.samples import CITIZENS
from schema.context import Context
from schema.root import build_schema
from tests.auth.conftest import WORKFLOW_SERVICE, Gateway
from tests.support.gateway import Api

READ = "query($id: ID!) { application(id: $id) { id status reference } }"
MINE = "{ myApplications(first: 50) { totalCount edges { node { id status } } } }"
LOG = """{ myDataAccessLog(first: 50) { totalCount
  nodes { actorKind actor agency serviceCode fields purpose } } }"""
SUBMIT = """mutation($code: ID!, $form: JSON!, $key: String) {
  submitApplication(serviceCode: $code, form: $form, idempotencyKey: $key) {
    application { id status } } }"""
LOOKUP = "query($c: ID!, $i: JSON!) { lookup(serviceCode: $c, input: $i) }"
CANCEL = "mutation($id: ID!) { cancelApplication(id: $id) { id status } }"
SUBSCRIBE = "subscription($id: ID!) { applicationStatusChanged(id: $id) { id } }"
TWO_CITIZENS_FILED = "EDU-001"  # registerNumber, then childRegisterNumber
TWO_CITIZENS_LOOKUP = "EDU-002"
NO_CITIZEN_FILED = "ENV-002"  # a company's filing: no REGISTER_NUMBER field
NO_CITIZEN_LOOKUP = "ARCH-002"
FILING = ("applications:read", "applications:write")


def app(
    gateway: Gateway, client_id: str, *scopes: str, sandbox: bool = False
) -> tuple[Api, Principal]:
    principal = Principal(PrincipalKind.APP, client_id, None, frozenset(scopes), sandbox=sandbox)
    return gateway.as_(principal), principal


def filer(gateway: Gateway, client_id: str, code: str = WORKFLOW_SERVICE) -> Api:
    return app(gateway, client_id, *FILING, f"service:{code}")[0]


async def file(api: Api, gateway: Gateway, code: str, citizen: int, key: str | None = None) -> str:
    form = await gateway.form(code, citizen)
    payload = await api.data(SUBMIT, {"code": code, "form": form, "key": key})
    app_id: str = payload["submitApplication"]["application"]["id"]
    return app_id


async def log_of(gateway: Gateway, citizen: int) -> list[dict[str, Any]]:
    nodes: list[dict[str, Any]] = (await gateway.citizen(citizen).data(LOG))["myDataAccessLog"][
        "nodes"
    ]
    return nodes


async def access_rows(gateway: Gateway) -> int:
    async with gateway.state.sessions() as session:
        return int(await session.scalar(select(func.count()).select_from(AccessEvent)) or 0)


def real_calls(gateway: Gateway) -> int:
    registry: ConnectorRegistry = gateway.state.services.registry
    total = 0
    for agency in registry.catalog.agencies:
        inner = registry.connector(agency.code).inner
        assert isinstance(inner, MemoryConnector)
        total += len(inner.calls)
    return total


def sandbox_requests(gateway: Gateway) -> int:
    registry: ConnectorRegistry = gateway.state.sandbox_registry
    total = 0
    for agency in registry.catalog.agencies:
        inner = registry.connector(agency.code).inner
        assert isinstance(inner, SandboxConnector)
        total += inner.requests
    return total


async def test_an_app_files_for_the_citizen_who_sees_it_logged_and_can_cancel_it(
    gateway: Gateway,
) -> None:
    app_id = await file(filer(gateway, "app-a"), gateway, WORKFLOW_SERVICE, citizen=0)
    alice = gateway.citizen(0)
    mine = (await alice.data(MINE))["myApplications"]
    assert [e["node"]["id"] for e in mine["edges"]] == [app_id]
    listing, submission = await log_of(gateway, 0)
    assert listing["purpose"] == "APPLICATION_LIST"
    assert submission == {
        "actorKind": "APP", "actor": "app-a", "agency": "ARCH", "serviceCode": WORKFLOW_SERVICE,
        "fields": sorted(await gateway.form(WORKFLOW_SERVICE)), "purpose": "SUBMISSION",
    }  # fmt: skip
    async with gateway.state.sessions() as session:
        stored = await session.get(Application, app_id)
        assert stored is not None
        assert (stored.citizen, stored.submitted_by) == (CITIZENS[0], "app-a")
        assert stored.sandbox is False
    assert (await log_of(gateway, 1)) == []  # nobody else's data

    cancelled = (await alice.data(CANCEL, {"id": app_id}))["cancelApplication"]
    assert cancelled["status"] == "CANCELLED"
    seen = (await filer(gateway, "app-a").data(READ, {"id": app_id}))["application"]
    assert seen["status"] == "CANCELLED"
    newest = (await log_of(gateway, 0))[0]
    assert (newest["actorKind"], newest["actor"], newest["purpose"]) == (
        "APP", "app-a", "FOLLOW_UP",
    )  # fmt: skip


async def test_an_app_reads_only_the_applications_it_filed(gateway: Gateway) -> None:
    own = await gateway.file(WORKFLOW_SERVICE, citizen=0)  # the citizen's own
    by_a = await file(filer(gateway, "app-a"), gateway, WORKFLOW_SERVICE, citizen=0)
    by_b = await file(filer(gateway, "app-b"), gateway, WORKFLOW_SERVICE, citizen=0)
    reader_a = app(gateway, "app-a", "applications:read")[0]
    assert (await reader_a.data(READ, {"id": by_a}))["application"]["id"] == by_a
    for guessed in (by_b, own, "00000000-0000-0000-0000-000000000000"):
        assert (await reader_a.data(READ, {"id": guessed}))["application"] is None
    # A citizen sees only their own, whoever filed them; not another's.
    assert (await gateway.citizen(1).data(READ, {"id": by_a}))["application"] is None
    assert (await gateway.citizen(0).data(READ, {"id": by_b}))["application"]["id"] == by_b
    # Without applications:read, not even its own; the refusal names the scope.
    writer_only = app(gateway, "app-a", "applications:write", f"service:{WORKFLOW_SERVICE}")[0]
    body = await writer_only.gql(READ, {"id": by_a})
    assert body["errors"][0]["extensions"] == {"code": "FORBIDDEN", "scopes": ["applications:read"]}

    # The subscription is scoped the same way: someone else's looks missing.
    services = gateway.state.services
    schema = build_schema(services.catalog)
    _, principal_a = app(gateway, "app-a", "applications:read")
    for target, expected in ((by_b, "NOT_FOUND"), (own, "NOT_FOUND")):
        stream = await schema.subscribe(
            SUBSCRIBE, variable_values={"id": target}, context_value=Context(principal_a, services)
        )
        assert not hasattr(stream, "errors")
        first = await anext(stream)  # type: ignore[arg-type]
        await stream.aclose()  # type: ignore[union-attr]
        assert first.errors and first.errors[0].extensions["code"] == expected


async def test_the_app_follows_its_application_to_delivered(gateway: Gateway) -> None:
    by_a = await file(filer(gateway, "app-a"), gateway, WORKFLOW_SERVICE, citizen=0)
    services = gateway.state.services
    schema = build_schema(services.catalog)
    _, principal_a = app(gateway, "app-a", "applications:read")
    stream = await schema.subscribe(
        SUBSCRIBE, variable_values={"id": by_a}, context_value=Context(principal_a, services)
    )
    pending = asyncio.create_task(anext(stream))  # type: ignore[arg-type]
    for _ in range(200):  # until the subscriber has read the application and listens
        if by_a in services.events._waiters:
            break
        await asyncio.sleep(0.01)
    assert await gateway.state.worker.deliver_due() == 1
    first = await asyncio.wait_for(pending, 10)
    await stream.aclose()  # type: ignore[union-attr]
    assert first.errors is None and first.data == {"applicationStatusChanged": {"id": by_a}}
    follow_up = (await log_of(gateway, 0))[0]
    assert (follow_up["actor"], follow_up["purpose"]) == ("app-a", "FOLLOW_UP")


async def test_app_idempotency_keys_are_scoped_per_app_and_citizen(gateway: Gateway) -> None:
    app_a, app_b = filer(gateway, "app-a"), filer(gateway, "app-b")
    first = await file(app_a, gateway, WORKFLOW_SERVICE, citizen=0, key="k-1")
    assert await file(app_a, gateway, WORKFLOW_SERVICE, citizen=0, key="k-1") == first
    others = {
        await file(app_b, gateway, WORKFLOW_SERVICE, citizen=0, key="k-1"),  # another app
        await file(app_a, gateway, WORKFLOW_SERVICE, citizen=1, key="k-1"),  # another citizen
        await file(gateway.citizen(0), gateway, WORKFLOW_SERVICE, citizen=0, key="k-1"),
    }
    assert len(others) == 3 and first not in others
    # app-b's replay of the key gives app-b's application, never app-a's.
    again = await file(app_b, gateway, WORKFLOW_SERVICE, citizen=0, key="k-1")
    assert again in others
    assert (await app_b.data(READ, {"id": again}))["application"]["id"] == again


async def test_a_service_naming_no_citizen_cannot_be_filed_by_an_app(gateway: Gateway) -> None:
    api = filer(gateway, "app-a", NO_CITIZEN_FILED)
    form = await gateway.form(NO_CITIZEN_FILED)
    body = await api.gql(SUBMIT, {"code": NO_CITIZEN_FILED, "form": form})
    error = body["errors"][0]
    assert error["extensions"] == {"code": "FORBIDDEN"}
    english, mongolian = error["message"].split(" / ")
    assert "register number" in english and "регистрийн дугаар" in mongolian
    assert body["data"] is None
    async with gateway.state.sessions() as session:
        assert await session.scalar(select(func.count()).select_from(Application)) == 0
    # The same form from a citizen is fine.
    await file(gateway.citizen(0), gateway, NO_CITIZEN_FILED, citizen=0)


async def test_an_app_submission_is_logged_for_each_citizen_its_form_names(
    gateway: Gateway,
) -> None:
    api = filer(gateway, "app-a", TWO_CITIZENS_FILED)
    form = await gateway.form(TWO_CITIZENS_FILED, citizen=0)
    form["childRegisterNumber"] = CITIZENS[2]
    payload = await api.data(SUBMIT, {"code": TWO_CITIZENS_FILED, "form": form})
    app_id = payload["submitApplication"]["application"]["id"]
    # Filed for the first REGISTER_NUMBER field's citizen only.
    assert (await gateway.citizen(0).data(READ, {"id": app_id}))["application"]["id"] == app_id
    assert (await gateway.citizen(2).data(READ, {"id": app_id}))["application"] is None
    for citizen in (0, 2):
        submission = (await log_of(gateway, citizen))[-1]
        assert submission["purpose"] == "SUBMISSION"
        assert (submission["actorKind"], submission["actor"]) == ("APP", "app-a")
        assert submission["fields"] == sorted(form)
    assert await log_of(gateway, 1) == []


async def test_an_app_lookup_is_logged_for_each_citizen_its_form_names(gateway: Gateway) -> None:
    api = app(gateway, "app-a", f"service:{TWO_CITIZENS_LOOKUP}", f"service:{NO_CITIZEN_LOOKUP}")[0]
    form = await gateway.form(TWO_CITIZENS_LOOKUP, citizen=0)
    form["childRegisterNumber"] = CITIZENS[2]
    answer = (await api.data(LOOKUP, {"c": TWO_CITIZENS_LOOKUP, "i": form}))["lookup"]
    for citizen in (0, 2):
        (row,) = await log_of(gateway, citizen)
        assert row == {
            "actorKind": "APP", "actor": "app-a", "agency": "EDU",
            "serviceCode": TWO_CITIZENS_LOOKUP, "fields": sorted({*form, *answer}),
            "purpose": "LOOKUP",
        }  # fmt: skip
    # A lookup whose form names no citizen concerns nobody's log.
    before = await access_rows(gateway)
    other = await gateway.form(NO_CITIZEN_LOOKUP)
    assert (await api.data(LOOKUP, {"c": NO_CITIZEN_LOOKUP, "i": other}))["lookup"]
    assert await access_rows(gateway) == before


async def test_each_listing_of_my_applications_is_one_log_row(gateway: Gateway) -> None:
    for _ in range(3):
        await gateway.file(WORKFLOW_SERVICE, citizen=0)
    before = await access_rows(gateway)
    alice = gateway.citizen(0)
    assert (await alice.data(MINE))["myApplications"]["totalCount"] == 3
    assert await access_rows(gateway) == before + 1
    newest = (await log_of(gateway, 0))[0]
    assert newest == {
        "actorKind": "CITIZEN", "actor": CITIZENS[0], "agency": None, "serviceCode": None,
        "fields": [], "purpose": "APPLICATION_LIST",
    }  # fmt: skip
    await alice.data(MINE)
    assert await access_rows(gateway) == before + 2  # one per listing, not per application


async def test_a_sandbox_app_never_reaches_an_agency_and_leaves_no_log(gateway: Gateway) -> None:
    scopes = (*FILING, f"service:{WORKFLOW_SERVICE}", f"service:{TWO_CITIZENS_LOOKUP}")
    sandbox, _ = app(gateway, "app-s", *scopes, sandbox=True)
    form = await gateway.form(TWO_CITIZENS_LOOKUP, citizen=0)
    answer = (await sandbox.data(LOOKUP, {"c": TWO_CITIZENS_LOOKUP, "i": form}))["lookup"]
    assert answer["kindergartenName"].startswith("Туршилтын утга")  # made up, nobody's
    app_id = await file(sandbox, gateway, WORKFLOW_SERVICE, citizen=0)
    assert await gateway.state.worker.deliver_due() == 1
    delivered = (await sandbox.data(READ, {"id": app_id}))["application"]
    assert delivered["status"] == "DELIVERED"
    assert delivered["reference"].startswith("SANDBOX-ARCH-")
    assert real_calls(gateway) == 0
    assert sandbox_requests(gateway) == 2  # the lookup and the delivery
    assert await access_rows(gateway) == 0
    async with gateway.state.sessions() as session:
        stored = await session.get(Application, app_id)
        assert stored is not None and stored.sandbox and stored.next_poll_at is None
    # A world of its own: neither the citizen named, their officers, nor the
    # same app's production token see it.
    live, _ = app(gateway, "app-s", *scopes)
    assert (await live.data(READ, {"id": app_id}))["application"] is None
    assert (await gateway.citizen(0).data(READ, {"id": app_id}))["application"] is None
    assert (await gateway.citizen(0).data(MINE))["myApplications"]["totalCount"] == 0
    assert (await gateway.operator().data(READ, {"id": app_id}))["application"]["id"] == app_id
    verdict = (await gateway.operator().data("{ auditVerify { ok } }"))["auditVerify"]
    assert verdict == {"ok": True}


async def test_the_same_app_live_reaches_the_agency(gateway: Gateway) -> None:
    """The other side of the sandbox test: the counters do move."""
    api = filer(gateway, "app-s")
    await file(api, gateway, WORKFLOW_SERVICE, citizen=0)
    assert await gateway.state.worker.deliver_due() == 1
    assert real_calls(gateway) == 1 and sandbox_requests(gateway) == 0


def test_the_environment_claim_makes_a_sandbox_app_only() -> None:
    claims = {"sub": "client-9", "client_id": "client-9", "scope": "service:LAND-001"}
    assert principal_of(claims).sandbox is False
    assert principal_of({**claims, "khaalga_env": "production"}).sandbox is False
    sandbox = principal_of({**claims, "khaalga_env": "sandbox"})
    assert (sandbox.kind, sandbox.sandbox) == (PrincipalKind.APP, True)
    with pytest.raises(InvalidToken):  # a misspelt world is not read as production
        principal_of({**claims, "khaalga_env": "Sandbox"})
    citizen = {"sub": CITIZENS[0], "client_id": "portal", "khaalga_kind": "CITIZEN"}
    assert principal_of({**citizen, "khaalga_env": "sandbox"}).sandbox is False
