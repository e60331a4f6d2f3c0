"""The GraphQL API over HTTP against the real app and the real catalog, on
SQLite and PostgreSQL. Agencies are in-memory fakes here; tests/test_e2e.py
runs the same paths against the real simulators."""

from __future__ import annotations

import asyncio
import sqlite3
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from sqlalchemy import exc as sa_exc

from connectors.base import BackendRequest
from connectors.memory import MemoryConnector
from gateway.app import create_app
from gateway.applications import ApplicationStore
from gateway.catalog.loader import Catalog
from gateway.settings import ROOT, Settings
from legacy.fakedata import fake_value
from legacy.samples import CITIZENS, sample_form
from tests.support.gateway import Api, citizen_token, officer_token

ALICE, BOB = CITIZENS[0], CITIZENS[1]
FORM_QUERY = """query($code: ID!) { service(code: $code) { code kind graphqlField form { fields {
  name type required label { mn en } pattern min max maxLength options { value label { mn en } }
  rule { mn en } } } } }"""
SUBMIT = """mutation($code: ID!, $form: JSON!, $key: String) {
  submitApplication(serviceCode: $code, form: $form, idempotencyKey: $key) {
    application { id status reference submittedAt service { code }
      history { at status note } } } }"""
INTROSPECT = """{ __type(name: "%s") {
  fields { name args { name type { kind ofType { name } } } } } }"""
MINE = """query($first: Int) {
  myApplications(first: $first) { totalCount edges { node { id } } } }"""
MINE_PAGE = """query($first: Int, $after: String) {
  myApplications(first: $first, after: $after) { edges { node { id } }
    pageInfo { hasNextPage hasPreviousPage endCursor } } }"""


def fake_answers(catalog: Catalog) -> dict[str, MemoryConnector]:
    def answer(request: BackendRequest) -> dict[str, object]:
        service = catalog.service(request.service_code)
        assert service is not None
        seed = str(sorted(request.payload.items()))
        return {
            service.binding.response[f.name]: fake_value(f.type, seed + f.name)
            for f in service.result
        }

    return {a.code: MemoryConnector(a.code, answer) for a in catalog.agencies}


@pytest.fixture
async def api(database_url: str, tmp_path: Path, catalog: Catalog) -> AsyncIterator[Api]:
    settings = Settings(var_dir=tmp_path, database_url=database_url, catalog_dir=ROOT / "catalog",
                        rate_limits="",  # these tests read every form; limits have their own
                        worker=False)  # fmt: skip
    app = create_app(settings, connector_overrides=fake_answers(catalog))
    app.state.settings = settings
    transport = httpx.ASGITransport(app=app)
    async with (
        app.router.lifespan_context(app),
        httpx.AsyncClient(transport=transport, base_url="http://khaalga.test") as http,
    ):
        client = Api(http)
        client.settings = settings  # type: ignore[attr-defined]
        yield client


def as_citizen(api: Api, register_number: str) -> Api:
    return api.as_(citizen_token(api.settings, register_number))  # type: ignore[attr-defined]


async def form_of(api: Api, code: str) -> dict[str, Any]:
    service: dict[str, Any] = (await api.data(FORM_QUERY, {"code": code}))["service"]
    return service


async def first_application(api: Api, citizen: Api, catalog: Catalog) -> tuple[str, str]:
    """File the catalog's first APPLICATION service; (service code, application id)."""
    code = next(s.code for s in catalog.services() if s.kind.value == "APPLICATION")
    form = sample_form((await form_of(api, code))["form"]["fields"], ALICE)
    payload = await citizen.data(SUBMIT, {"code": code, "form": form})
    return code, payload["submitApplication"]["application"]["id"]


async def test_the_catalog_is_public_and_complete(api: Api) -> None:
    data = await api.data(
        "{ agencies { code name { mn en } services { code } } services(first: 200) { totalCount"
        " edges { node { code } } pageInfo { hasNextPage } } }"
    )
    assert len(data["agencies"]) == 13
    assert sum(len(a["services"]) for a in data["agencies"]) == 123
    assert data["services"]["totalCount"] == 123
    assert len(data["services"]["edges"]) == 123
    assert data["services"]["pageInfo"]["hasNextPage"] is False


async def test_services_page_with_cursors(api: Api) -> None:
    query = """query($after: String) { services(first: 50, after: $after) { totalCount
      edges { cursor node { code } } pageInfo { hasNextPage endCursor } } }"""
    codes: list[str] = []
    after = None
    while True:
        page = (await api.data(query, {"after": after}))["services"]
        codes += [e["node"]["code"] for e in page["edges"]]
        if not page["pageInfo"]["hasNextPage"]:
            break
        after = page["pageInfo"]["endCursor"]
    assert len(codes) == len(set(codes)) == 123


@pytest.mark.parametrize("term", ["ГАЗРЫН", "газрын", "Land", "LAND"])
async def test_search_matches_words_in_either_language_any_case(api: Api, term: str) -> None:
    query = """query($s: String) { services(filter: {search: $s}, first: 200) {
      totalCount edges { node { code name { mn en } description { mn en } } } } }"""
    found = (await api.data(query, {"s": term}))["services"]
    assert found["totalCount"] > 0
    for edge in found["edges"]:
        node = edge["node"]
        text = " ".join([*node["name"].values(), *node["description"].values()]).casefold()
        assert term.casefold() in text


async def test_filters_by_agency_and_kind(api: Api, catalog: Catalog) -> None:
    query = """{ services(filter: {agency: "LAND", kind: LOOKUP}, first: 200) {
      totalCount edges { node { code kind } } } }"""
    found = (await api.data(query))["services"]
    land = catalog.agency("LAND")
    assert land is not None
    expected = [s.code for s in land.services if s.kind.value == "LOOKUP"]
    assert [e["node"]["code"] for e in found["edges"]] == expected


async def test_form_description_shows_every_enforced_rule(api: Api, catalog: Catalog) -> None:
    service = next(
        s for s in catalog.services() if any(f.type == "REGISTER_NUMBER" for f in s.form)
    )
    form = await form_of(api, service.code)
    field = next(f for f in form["form"]["fields"] if f["type"] == "REGISTER_NUMBER")
    assert field["pattern"] == "^[А-ЯЁӨҮ]{2}[0-9]{8}$"
    assert "birth date" in field["rule"]["en"] and "төрсөн огноо" in field["rule"]["mn"]


async def test_everything_but_the_catalog_needs_a_token(api: Api) -> None:
    body = await api.gql(MINE, {"first": 5})
    assert body["errors"][0]["extensions"]["code"] == "UNAUTHENTICATED"


async def test_an_invalid_token_is_a_401_with_a_bearer_challenge(api: Api) -> None:
    response = await api.as_("not-a-jwt").post("{ agencies { code } }")
    assert response.status_code == 401
    assert response.headers["content-type"] == "application/problem+json"
    assert response.headers["www-authenticate"].startswith('Bearer error="invalid_token"')
    assert response.json()["status"] == 401


async def test_every_application_service_accepts_its_own_form(api: Api, catalog: Catalog) -> None:
    alice = as_citizen(api, ALICE)
    codes = [s.code for s in catalog.services() if s.kind.value == "APPLICATION"]
    for code in codes:
        description = await form_of(api, code)
        form = sample_form(description["form"]["fields"], ALICE)
        app = (await alice.data(SUBMIT, {"code": code, "form": form}))["submitApplication"]
        assert app["application"]["status"] == "SUBMITTED", code
        assert app["application"]["service"]["code"] == code
    mine = (await alice.data(MINE, {"first": 1}))["myApplications"]
    assert mine["totalCount"] == len(codes)


async def test_every_application_service_has_a_typed_mutation(api: Api, catalog: Catalog) -> None:
    alice = as_citizen(api, ALICE)
    introspection = await api.data(INTROSPECT % "Mutation")
    inputs = {
        f["name"]: next(a["type"]["ofType"]["name"] for a in f["args"] if a["name"] == "input")
        for f in introspection["__type"]["fields"]
        if any(a["name"] == "input" for a in f["args"])
    }
    for service in catalog.services():
        if service.kind.value != "APPLICATION":
            continue
        description = await form_of(api, service.code)
        field = description["graphqlField"]
        mutation = (
            f"mutation($input: {inputs[field]}!, $key: String) {{ {field}(input: $input, "
            "idempotencyKey: $key) { application { id status service { code } } } }"
        )
        form = sample_form(description["form"]["fields"], ALICE)
        result = (await alice.data(mutation, {"input": form, "key": service.code}))[field]
        assert result["application"]["service"]["code"] == service.code
        again = (await alice.data(mutation, {"input": form, "key": service.code}))[field]
        assert again["application"]["id"] == result["application"]["id"]


async def test_every_lookup_service_answers_typed_results(api: Api, catalog: Catalog) -> None:
    alice = as_citizen(api, ALICE)
    for service in catalog.services():
        if service.kind.value != "LOOKUP":
            continue
        description = await form_of(api, service.code)
        form = sample_form(description["form"]["fields"], ALICE)
        generic = (await alice.data(
            "query($c: ID!, $i: JSON!) { lookup(serviceCode: $c, input: $i) }",
            {"c": service.code, "i": form},
        ))["lookup"]  # fmt: skip
        assert set(generic) == {f.name for f in service.result}


async def test_an_invalid_register_number_is_refused_and_nothing_stored(
    api: Api, catalog: Catalog
) -> None:
    alice = as_citizen(api, ALICE)
    code = next(s.code for s in catalog.services() if s.kind.value == "APPLICATION")
    description = await form_of(api, code)
    form = sample_form(description["form"]["fields"], ALICE)
    field = next(f["name"] for f in description["form"]["fields"] if f["type"] == "REGISTER_NUMBER")
    form[field] = "УБ99023012"  # 30 February
    body = await alice.gql(SUBMIT, {"code": code, "form": form})
    error = body["errors"][0]
    assert error["extensions"]["code"] == "BAD_USER_INPUT"
    assert set(error["extensions"]["fields"]) == {field}
    message = error["extensions"]["fields"][field]
    assert message["mn"] and message["en"]
    assert "УБ99023012" not in str(body)
    assert (await alice.data(MINE, {"first": 1}))["myApplications"]["totalCount"] == 0


async def test_unknown_service_is_not_found(api: Api) -> None:
    body = await as_citizen(api, ALICE).gql(SUBMIT, {"code": "NOPE-001", "form": {}})
    assert body["errors"][0]["extensions"]["code"] == "NOT_FOUND"


async def test_same_idempotency_key_gives_one_application(api: Api, catalog: Catalog) -> None:
    alice = as_citizen(api, ALICE)
    code = next(s.code for s in catalog.services() if s.kind.value == "APPLICATION")
    form = sample_form((await form_of(api, code))["form"]["fields"], ALICE)
    variables = {"code": code, "form": form, "key": "once"}
    results = await asyncio.gather(*(alice.data(SUBMIT, variables) for _ in range(8)))
    assert len({r["submitApplication"]["application"]["id"] for r in results}) == 1
    assert (await alice.data(MINE, {"first": 1}))["myApplications"]["totalCount"] == 1


async def test_a_busy_database_is_a_typed_retryable_error_and_the_retry_files_once(
    api: Api, catalog: Catalog, monkeypatch: pytest.MonkeyPatch
) -> None:
    alice = as_citizen(api, ALICE)
    code = next(s.code for s in catalog.services() if s.kind.value == "APPLICATION")
    form = sample_form((await form_of(api, code))["form"]["fields"], ALICE)
    variables = {"code": code, "form": form, "key": "busy"}

    async def locked(*_: object, **__: object) -> None:
        # What SQLAlchemy raises when SQLite's write lock outlasts the busy timeout.
        statement = "INSERT INTO applications (id, citizen, form) VALUES (?, ?, ?)"
        raise sa_exc.OperationalError(
            statement, None, sqlite3.OperationalError("database is locked")
        )

    with monkeypatch.context() as patch:
        patch.setattr(ApplicationStore, "submit", locked)
        body = await alice.gql(SUBMIT, variables)
    (error,) = body["errors"]
    assert error["extensions"] == {"code": "UNAVAILABLE"}
    assert error["path"] == ["submitApplication"]
    assert "try again" in error["message"] and "дахин оролдоно уу" in error["message"]
    # Neither the statement nor the tables reach the client, even in development.
    assert "INSERT" not in error["message"] and "applications" not in error["message"]
    assert (await alice.data(MINE, {"first": 1}))["myApplications"]["totalCount"] == 0
    retried = await asyncio.gather(*(alice.data(SUBMIT, variables) for _ in range(2)))
    assert len({r["submitApplication"]["application"]["id"] for r in retried}) == 1
    assert (await alice.data(MINE, {"first": 1}))["myApplications"]["totalCount"] == 1

    async def broken(*_: object, **__: object) -> None:
        # Also an OperationalError on SQLite, but a bug: "try again" would mislead.
        missing = sqlite3.OperationalError("no such table: applications")
        raise sa_exc.OperationalError("INSERT INTO applications", None, missing)

    with monkeypatch.context() as patch:
        patch.setattr(ApplicationStore, "submit", broken)
        (error,) = (await alice.gql(SUBMIT, variables | {"key": "bug"}))["errors"]
    assert error.get("extensions", {}).get("code") != "UNAVAILABLE"


async def test_a_second_citizen_can_neither_read_nor_list(api: Api, catalog: Catalog) -> None:
    alice, bob = as_citizen(api, ALICE), as_citizen(api, BOB)
    code, app_id = await first_application(api, alice, catalog)
    query = "query($id: ID!) { application(id: $id) { id status } }"
    assert (await alice.data(query, {"id": app_id}))["application"]["id"] == app_id
    assert (await bob.data(query, {"id": app_id}))["application"] is None
    assert (await bob.data(MINE, {"first": 50}))["myApplications"]["totalCount"] == 0
    missing = await bob.data(query, {"id": "00000000-0000-0000-0000-000000000000"})
    assert missing == {"application": None}  # looks exactly like a missing one
    agency = code.split("-")[0]
    officer = api.as_(officer_token(api.settings, agency))  # type: ignore[attr-defined]
    assert (await officer.data(query, {"id": app_id}))["application"]["id"] == app_id


async def test_my_applications_page_by_cursor_and_refuse_a_bad_one(
    api: Api, catalog: Catalog
) -> None:
    alice = as_citizen(api, ALICE)
    filed = {(await first_application(api, alice, catalog))[1] for _ in range(3)}
    first = (await alice.data(MINE_PAGE, {"first": 2}))["myApplications"]
    assert first["pageInfo"]["hasNextPage"] and not first["pageInfo"]["hasPreviousPage"]
    after = {"first": 2, "after": first["pageInfo"]["endCursor"]}
    rest = (await alice.data(MINE_PAGE, after))["myApplications"]
    assert rest["pageInfo"]["hasPreviousPage"] and not rest["pageInfo"]["hasNextPage"]
    seen = [e["node"]["id"] for e in first["edges"] + rest["edges"]]
    assert len(seen) == 3 and set(seen) == filed
    # A corrupted cursor, or another list's, is refused: never page one again.
    app_cursor = "YXBwOjIwMjUtMDEtMDF8eA=="  # "app:<time>|x", a developer app's
    for cursor in ("bm9wZQ==", "not a cursor", app_cursor):
        body = await alice.gql(MINE_PAGE, {"first": 2, "after": cursor})
        assert body["data"] is None
        error = body["errors"][0]
        assert error["extensions"]["code"] == "BAD_USER_INPUT"
        assert error["extensions"]["fields"] == {
            "after": {"mn": "Хуудасны заагч буруу", "en": "The cursor is not valid"}
        }


async def test_my_applications_shows_history_when_asked_however_it_is_asked(
    api: Api, catalog: Catalog
) -> None:
    alice = as_citizen(api, ALICE)
    await first_application(api, alice, catalog)
    plain = "{ myApplications { edges { node { id status } } } }"
    direct = "{ myApplications { edges { node { id history { status } } } } }"
    by_fragment = """{ myApplications { edges { node { ...h } } } }
      fragment h on Application { history { status } }"""
    inline = """{ myApplications { edges {
      ... on ApplicationEdge { node { history { status } } } } } }"""
    (node,) = [e["node"] for e in (await alice.data(plain))["myApplications"]["edges"]]
    assert node["status"] == "SUBMITTED"
    for query in (direct, by_fragment, inline):
        edges = (await alice.data(query))["myApplications"]["edges"]
        assert [e["node"]["history"] for e in edges] == [[{"status": "SUBMITTED"}]], query


async def test_cancel_before_review(api: Api, catalog: Catalog) -> None:
    alice, bob = as_citizen(api, ALICE), as_citizen(api, BOB)
    _, app_id = await first_application(api, alice, catalog)
    cancel = "mutation($id: ID!) { cancelApplication(id: $id) { status history { status } } }"
    refused = await bob.gql(cancel, {"id": app_id})
    assert refused["errors"][0]["extensions"]["code"] == "NOT_FOUND"
    done = (await alice.data(cancel, {"id": app_id}))["cancelApplication"]
    assert done["status"] == "CANCELLED"
    assert [h["status"] for h in done["history"]] == ["SUBMITTED", "CANCELLED"]
