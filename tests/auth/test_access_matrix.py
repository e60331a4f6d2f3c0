"""Every root field of the schema x every principal kind: allowed or denied
exactly as the policy says. A root field missing from POLICY fails the
test, so a new field cannot ship without a decision about who may use it.

Apps appear twice: ``APP`` holds no scope but ``catalog:read`` (every
refusal must name the scope it lacks), ``SCOPED_APP`` holds every scope
(auth/permissions/scopes.py)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import pytest
from graphql import ExecutionResult

from auth.principal import ANONYMOUS, Principal, PrincipalKind
from gateway.catalog.loader import Catalog
from gateway.catalog.model import FieldType, Service
from legacy.samples import CITIZENS
from schema.context import Context
from schema.root import build_schema
from tests.auth.conftest import Gateway
from tests.support.gateway import Api

KINDS = ("ANONYMOUS", "CITIZEN", "OFFICER", "APP", "SCOPED_APP", "OPERATOR")
EVERYONE = frozenset(KINDS)
CITIZEN = frozenset({"CITIZEN"})
SERVICE_USERS = frozenset({"CITIZEN", "SCOPED_APP"})
OFFICER = frozenset({"OFFICER"})
OPERATOR = frozenset({"OPERATOR"})
DEVELOPERS = frozenset({"CITIZEN", "OPERATOR"})  # the developer program's own-app fields
NO_ID = "00000000-0000-0000-0000-000000000000"

# field: (document, variables, kinds allowed)
POLICY: dict[str, tuple[str, dict[str, Any], frozenset[str]]] = {
    "agencies": ("{ agencies { code } }", {}, EVERYONE),
    "agency": ('{ agency(code: "LAND") { code } }', {}, EVERYONE),
    "services": ("{ services(first: 1) { totalCount } }", {}, EVERYONE),
    "service": ('{ service(code: "LAND-001") { code } }', {}, EVERYONE),
    "me": ("{ me { kind } }", {}, EVERYONE),
    "lookup": ('{ lookup(serviceCode: "NOPE-001", input: {}) }', {}, SERVICE_USERS),
    "application": (
        "query($id: ID!) { application(id: $id) { id } }", {"id": NO_ID},
        frozenset({"CITIZEN", "OFFICER", "OPERATOR", "SCOPED_APP"}),
    ),
    "myApplications": ("{ myApplications { totalCount } }", {}, CITIZEN),
    "myDataAccessLog": ("{ myDataAccessLog { totalCount } }", {}, CITIZEN),
    "agencyHealth": ("{ agencyHealth { status } }", {}, frozenset({"OFFICER", "OPERATOR"})),
    "deadLetters": ("{ deadLetters { id } }", {}, OPERATOR),
    "auditVerify": ("{ auditVerify { ok } }", {}, OPERATOR),
    "agencyApplications": ("{ agencyApplications { totalCount } }", {}, OFFICER),
    "submitApplication": (
        'mutation { submitApplication(serviceCode: "NOPE-001", form: {}) { application { id } } }',
        {}, SERVICE_USERS,
    ),
    "cancelApplication": (
        "mutation($id: ID!) { cancelApplication(id: $id) { id } }", {"id": NO_ID}, CITIZEN,
    ),
    "updateApplicationStatus": (
        "mutation($id: ID!) { updateApplicationStatus(id: $id, status: IN_REVIEW) { id } }",
        {"id": NO_ID}, OFFICER,
    ),
    "myApps": ("{ myApps { totalCount } }", {}, DEVELOPERS),
    "apps": ("{ apps { totalCount } }", {}, OPERATOR),
    "registerApp": (  # an empty name: refused as input by whoever may register
        'mutation { registerApp(input: {name: "", description: "", environment: SANDBOX, '
        "scopes: []}) { clientSecret } }", {}, DEVELOPERS,
    ),
    "approveApp": ('mutation { approveApp(clientId: "none") { status } }', {}, OPERATOR),
    "suspendApp": ('mutation { suspendApp(clientId: "none") { status } }', {}, OPERATOR),
    "revokeApp": ('mutation { revokeApp(clientId: "none") { status } }', {}, OPERATOR),
    "setAppQuota": ('mutation { setAppQuota(clientId: "none") { status } }', {}, OPERATOR),
    "rotateAppSecret": (
        'mutation { rotateAppSecret(clientId: "none") { clientSecret } }', {}, DEVELOPERS,
    ),
    "revokeAppSecret": (
        'mutation { revokeAppSecret(clientId: "none", secretId: "none") { status } }', {},
        DEVELOPERS,
    ),
}  # fmt: skip
# What the scope-less APP is told it lacks, field by field (generated fields
# are added by ``generated_documents``).
APP_LACKS: dict[str, list[str]] = {
    "lookup": ["service:NOPE-001"],
    "submitApplication": ["applications:write", "service:NOPE-001"],
    "application": ["applications:read"],
}
SUBSCRIBE = """subscription($id: ID!) { applicationStatusChanged(id: $id) { id } }"""
ROOT_FIELDS = """query($t: String!) { __type(name: $t) { fields {
  name args { name type { kind ofType { name } } } } } }"""
SAMPLED = 3  # generated fields of each kind, spread over the catalog


def scoped_app(catalog: Catalog) -> Principal:
    scopes = {"applications:read", "applications:write", "service:NOPE-001"}
    scopes |= {f"service:{s.code}" for s in catalog.services()}
    return Principal(PrincipalKind.APP, "app-scoped", None, frozenset(scopes))


def principal(gateway: Gateway, kind: str) -> Principal:
    return {
        "ANONYMOUS": lambda: ANONYMOUS,
        "CITIZEN": lambda: Principal(PrincipalKind.CITIZEN, CITIZENS[0]),
        "OFFICER": lambda: Principal(PrincipalKind.OFFICER, "officer-1", "LAND"),
        "APP": lambda: Principal(PrincipalKind.APP, "app-1", None, frozenset({"catalog:read"})),
        "SCOPED_APP": lambda: scoped_app(gateway.state.services.catalog),
        "OPERATOR": lambda: Principal(PrincipalKind.OPERATOR, "operator-1"),
    }[kind]()


def caller(gateway: Gateway, kind: str) -> Api:
    return {
        "ANONYMOUS": lambda: gateway.anonymous,
        "CITIZEN": lambda: gateway.citizen(0),
        "OFFICER": lambda: gateway.officer("LAND"),
        "APP": lambda: gateway.app(),
        "SCOPED_APP": lambda: gateway.as_(scoped_app(gateway.state.services.catalog)),
        "OPERATOR": lambda: gateway.operator(),
    }[kind]()


async def root_fields(gateway: Gateway, type_name: str) -> dict[str, str | None]:
    """Root field name -> the type name of its ``input`` argument (generated fields)."""
    data = await gateway.anonymous.data(ROOT_FIELDS, {"t": type_name})
    return {
        f["name"]: next(
            (a["type"]["ofType"]["name"] for a in f["args"] if a["name"] == "input"), None
        )
        for f in data["__type"]["fields"]
    }


def _names_a_citizen(service: Service) -> bool:
    return any(f.type is FieldType.REGISTER_NUMBER for f in service.form)


async def generated_documents(
    gateway: Gateway,
) -> dict[str, tuple[str, dict[str, Any], frozenset[str]]]:
    """Sampled generated fields: (document, variables, kinds allowed). An app
    cannot file a service whose form names no citizen (no REGISTER_NUMBER
    field), whatever its scopes: one such service is always added."""
    catalog = gateway.state.services.catalog
    documents: dict[str, tuple[str, dict[str, Any], frozenset[str]]] = {}
    for operation, kind in (("query", "LOOKUP"), ("mutation", "APPLICATION")):
        inputs = await root_fields(gateway, operation.capitalize())
        services = [s for s in catalog.services() if s.kind.value == kind]
        step = max(1, len(services) // SAMPLED)
        sampled = services[::step][:SAMPLED]
        if kind == "APPLICATION":
            sampled.append(next(s for s in services if not _names_a_citizen(s)))
        for service in sampled:
            field = service.graphql_field
            selection = "{ __typename }" if kind == "LOOKUP" else "{ application { id } }"
            document = f"{operation}($i: {inputs[field]}!) {{ {field}(input: $i) {selection} }}"
            allowed = SERVICE_USERS if kind == "LOOKUP" or _names_a_citizen(service) else CITIZEN
            documents[field] = (document, {"i": await gateway.form(service.code)}, allowed)
            scopes = [f"service:{service.code}"]
            APP_LACKS[field] = scopes if kind == "LOOKUP" else ["applications:write", *scopes]
    return documents


async def test_every_root_field_has_a_policy_in_this_matrix(gateway: Gateway) -> None:
    catalog = gateway.state.services.catalog
    generated = {s.graphql_field for s in catalog.services()}
    declared = {*await root_fields(gateway, "Query"), *await root_fields(gateway, "Mutation")}
    assert declared - generated == set(POLICY)


@pytest.mark.parametrize("kind", KINDS)
async def test_access_matrix(gateway: Gateway, kind: str) -> None:
    who = caller(gateway, kind)
    cases = {name: (doc, variables, allowed) for name, (doc, variables, allowed) in POLICY.items()}
    generated = await generated_documents(gateway)
    cases.update(generated)
    assert len(cases) == len(POLICY) + len(generated)
    assert len(generated) >= 2 * SAMPLED + 1
    for name, (document, variables, allowed) in cases.items():
        body = await who.gql(document, variables)
        codes = {(e.get("extensions") or {}).get("code") for e in body.get("errors", [])}
        if kind in allowed:
            assert not codes & {"UNAUTHENTICATED", "FORBIDDEN"}, (name, body)
        else:
            expected = "UNAUTHENTICATED" if kind == "ANONYMOUS" else "FORBIDDEN"
            assert codes == {expected}, (name, body)
            assert (body.get("data") or {}).get(name) is None, name
        if kind == "APP" and name in APP_LACKS:
            error = body["errors"][0]
            assert error["extensions"]["scopes"] == APP_LACKS[name], (name, body)
            english, mongolian = error["message"].split(" / ")
            assert all(s in english and s in mongolian for s in APP_LACKS[name]), error


async def _first(result: AsyncIterator[ExecutionResult] | ExecutionResult) -> ExecutionResult:
    if isinstance(result, ExecutionResult):
        return result
    try:
        return await anext(result)
    finally:
        await result.aclose()  # type: ignore[attr-defined]


@pytest.mark.parametrize("kind", KINDS)
async def test_subscription_policy(gateway: Gateway, kind: str) -> None:
    """``applicationStatusChanged`` admits whoever may read the application;
    for an unknown id an admitted caller is told NOT_FOUND."""
    services = gateway.state.services
    schema = build_schema(services.catalog)
    context = Context(principal(gateway, kind), services)
    result = await _first(
        await schema.subscribe(SUBSCRIBE, variable_values={"id": NO_ID}, context_value=context)
    )
    assert result.errors, result
    code = result.errors[0].extensions["code"]  # type: ignore[index]
    allowed = POLICY["application"][2]
    if kind in allowed:
        assert code == "NOT_FOUND"
    else:
        assert code == ("UNAUTHENTICATED" if kind == "ANONYMOUS" else "FORBIDDEN")
    if kind == "APP":
        assert result.errors[0].extensions["scopes"] == ["applications:read"]  # type: ignore[index]


async def test_me_tells_each_principal_who_it_is(gateway: Gateway) -> None:
    query = "{ me { kind subject agency scopes } }"
    assert (await gateway.anonymous.data(query))["me"] == {
        "kind": "ANONYMOUS", "subject": None, "agency": None, "scopes": [],
    }  # fmt: skip
    officer = (await gateway.officer("LAND", "officer-9").data(query))["me"]
    assert officer == {"kind": "OFFICER", "subject": "officer-9", "agency": "LAND", "scopes": []}
    app = (await gateway.app("client-42").data(query))["me"]
    assert app == {"kind": "APP", "subject": "client-42", "agency": None,
                   "scopes": ["catalog:read"]}  # fmt: skip
