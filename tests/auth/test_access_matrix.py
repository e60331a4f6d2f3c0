"""Every root field of the schema x every principal kind: allowed or denied
exactly as the policy says. A root field missing from POLICY fails the
test, so a new field cannot ship without a decision about who may use it."""

from __future__ import annotations

from typing import Any

import pytest

from tests.auth.conftest import Gateway
from tests.support.gateway import Api

KINDS = ("ANONYMOUS", "CITIZEN", "OFFICER", "APP", "OPERATOR")
EVERYONE = frozenset(KINDS)
CITIZEN = frozenset({"CITIZEN"})
OFFICER = frozenset({"OFFICER"})
OPERATOR = frozenset({"OPERATOR"})
NO_ID = "00000000-0000-0000-0000-000000000000"

# field: (document, variables, kinds allowed)
POLICY: dict[str, tuple[str, dict[str, Any], frozenset[str]]] = {
    "agencies": ("{ agencies { code } }", {}, EVERYONE),
    "agency": ('{ agency(code: "LAND") { code } }', {}, EVERYONE),
    "services": ("{ services(first: 1) { totalCount } }", {}, EVERYONE),
    "service": ('{ service(code: "LAND-001") { code } }', {}, EVERYONE),
    "me": ("{ me { kind } }", {}, EVERYONE),
    "lookup": ('{ lookup(serviceCode: "NOPE-001", input: {}) }', {}, CITIZEN),
    "application": (
        "query($id: ID!) { application(id: $id) { id } }", {"id": NO_ID},
        frozenset({"CITIZEN", "OFFICER", "OPERATOR"}),
    ),
    "myApplications": ("{ myApplications { totalCount } }", {}, CITIZEN),
    "myDataAccessLog": ("{ myDataAccessLog { totalCount } }", {}, CITIZEN),
    "agencyHealth": ("{ agencyHealth { status } }", {}, frozenset({"OFFICER", "OPERATOR"})),
    "deadLetters": ("{ deadLetters { id } }", {}, OPERATOR),
    "auditVerify": ("{ auditVerify { ok } }", {}, OPERATOR),
    "agencyApplications": ("{ agencyApplications { totalCount } }", {}, OFFICER),
    "submitApplication": (
        'mutation { submitApplication(serviceCode: "NOPE-001", form: {}) { application { id } } }',
        {}, CITIZEN,
    ),
    "cancelApplication": (
        "mutation($id: ID!) { cancelApplication(id: $id) { id } }", {"id": NO_ID}, CITIZEN,
    ),
    "updateApplicationStatus": (
        "mutation($id: ID!) { updateApplicationStatus(id: $id, status: IN_REVIEW) { id } }",
        {"id": NO_ID}, OFFICER,
    ),
}  # fmt: skip
ROOT_FIELDS = """query($t: String!) { __type(name: $t) { fields {
  name args { name type { kind ofType { name } } } } } }"""
SAMPLED = 3  # generated fields of each kind, spread over the catalog


def caller(gateway: Gateway, kind: str) -> Api:
    return {
        "ANONYMOUS": lambda: gateway.anonymous,
        "CITIZEN": lambda: gateway.citizen(0),
        "OFFICER": lambda: gateway.officer("LAND"),
        "APP": lambda: gateway.app(),
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


async def generated_documents(gateway: Gateway) -> dict[str, tuple[str, dict[str, Any]]]:
    catalog = gateway.state.services.catalog
    documents: dict[str, tuple[str, dict[str, Any]]] = {}
    for operation, kind in (("query", "LOOKUP"), ("mutation", "APPLICATION")):
        inputs = await root_fields(gateway, operation.capitalize())
        services = [s for s in catalog.services() if s.kind.value == kind]
        step = max(1, len(services) // SAMPLED)
        for service in services[::step][:SAMPLED]:
            field = service.graphql_field
            selection = "{ __typename }" if kind == "LOOKUP" else "{ application { id } }"
            document = f"{operation}($i: {inputs[field]}!) {{ {field}(input: $i) {selection} }}"
            documents[field] = (document, {"i": await gateway.form(service.code)})
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
    for name, (doc, variables) in (await generated_documents(gateway)).items():
        cases[name] = (doc, variables, CITIZEN)
    assert len(cases) == len(POLICY) + 2 * SAMPLED
    for name, (document, variables, allowed) in cases.items():
        body = await who.gql(document, variables)
        codes = {(e.get("extensions") or {}).get("code") for e in body.get("errors", [])}
        if kind in allowed:
            assert not codes & {"UNAUTHENTICATED", "FORBIDDEN"}, (name, body)
        else:
            expected = "UNAUTHENTICATED" if kind == "ANONYMOUS" else "FORBIDDEN"
            assert codes == {expected}, (name, body)
            assert (body.get("data") or {}).get(name) is None, name


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
