"""The shared response cache of catalog-only operations: what it serves, and
above all what it never stores or serves (gateway/http/response_cache.py)."""

from __future__ import annotations

import dataclasses
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import strawberry
from graphql import GraphQLNamedType, GraphQLObjectType, get_named_type, parse

from auth.permissions import Public
from auth.permissions.enforce import policy_of
from gateway.http.response_cache import ResponseCache
from gateway.observability.metrics import GatewayMetrics
from gateway.settings import Settings
from schema.context import Services
from schema.public import CATALOG_ROOT_FIELDS, catalog_only
from tests.http.conftest import client_for, settings_for
from tests.support.gateway import citizen_token

CATALOG = "query Catalog { agencies { code name { en } } }"
A, B = "УБ99010112", "ТА85122304"


def cache_of(http: httpx.AsyncClient) -> ResponseCache:
    route = next(r for r in http.app.routes if getattr(r, "path", None) == "/graphql")  # type: ignore[attr-defined]
    cache: ResponseCache | None = route.app.response_cache
    assert cache is not None
    return cache


def lookups(http: httpx.AsyncClient, result: str) -> float:
    metrics: GatewayMetrics = http.app.state.metrics  # type: ignore[attr-defined]
    value = metrics.registry.get_sample_value("khaalga_response_cache_total", {"result": result})
    return value or 0.0


async def post(
    http: httpx.AsyncClient, query: str, token: str | None = None, **extra: Any
) -> httpx.Response:
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    headers.update(extra.pop("headers", {}))
    return await http.post("/graphql", json={"query": query, **extra}, headers=headers)


@pytest.fixture
def settings(tmp_path: Path) -> Settings:
    return settings_for(tmp_path)


@pytest.fixture
async def http(settings: Settings) -> AsyncIterator[httpx.AsyncClient]:
    async with client_for(settings) as client:
        yield client


async def test_a_catalog_answer_is_served_again_from_the_cache(http: httpx.AsyncClient) -> None:
    first = await post(http, CATALOG)
    second = await post(http, CATALOG)
    assert first.status_code == second.status_code == 200
    assert first.content == second.content
    assert second.headers["content-type"] == first.headers["content-type"]
    assert "errors" not in second.json()
    assert (lookups(http, "miss"), lookups(http, "hit")) == (1, 1)
    metrics = (await http.get("/metrics")).text
    assert 'khaalga_response_cache_total{result="hit"} 1.0' in metrics
    # Counted as the operation it answers, not as a refusal or the IDE page.
    assert 'khaalga_graphql_requests_total{operation="Catalog",outcome="ok",type="query"} 2.0' in (
        metrics
    )


async def test_the_key_holds_variables_and_the_response_media_type(
    http: httpx.AsyncClient,
) -> None:
    query = "query One($c: ID!) { agency(code: $c) { code } }"
    land = await post(http, query, variables={"c": "LAND"})
    tax = await post(http, query, variables={"c": "TAX"})
    assert land.json()["data"]["agency"]["code"] == "LAND"
    assert tax.json()["data"]["agency"]["code"] == "TAX"
    accept = {"Accept": "application/graphql-response+json"}
    graphql = await post(http, query, variables={"c": "LAND"}, headers=accept)
    assert graphql.headers["content-type"].startswith("application/graphql-response+json")
    assert lookups(http, "hit") == 0
    again = await post(http, query, variables={"c": "TAX"})
    assert again.json()["data"]["agency"]["code"] == "TAX"
    assert lookups(http, "hit") == 1


async def test_an_authenticated_caller_shares_only_catalog_only_answers(
    http: httpx.AsyncClient, settings: Settings
) -> None:
    await post(http, CATALOG)
    citizen = await post(http, CATALOG, citizen_token(settings, A))
    assert citizen.json() == (await post(http, CATALOG)).json()
    assert lookups(http, "hit") == 2


@pytest.mark.parametrize(
    "query",
    [
        "{ agencies { code } me { subject } }",  # a personal root field beside the catalog
        "{ me { subject kind } }",
        "{ myApplications { totalCount edges { node { id } } } }",
        "query Q { ...Mine } fragment Mine on Query { me { subject } agencies { code } }",
        "{ ... on Query { agencies { code } me { subject } } }",
    ],
)
async def test_personal_data_is_never_stored_nor_served_to_another_caller(
    http: httpx.AsyncClient, settings: Settings, query: str
) -> None:
    a, b = citizen_token(settings, A), citizen_token(settings, B)
    for _ in range(2):
        await post(http, query, a)
    answer = await post(http, query, b)
    assert len(cache_of(http)) == 0
    assert (lookups(http, "hit"), lookups(http, "miss")) == (0, 0)
    assert A not in answer.text
    if "me" in query:
        assert B in answer.text  # B's own answer, executed for B


async def test_answers_with_errors_are_not_stored(http: httpx.AsyncClient) -> None:
    query = "query One($c: ID!) { agency(code: $c) { code } }"
    for _ in range(2):
        bad = await post(http, query, variables={"c": {"not": "an id"}})
        assert "errors" in bad.json()
    assert len(cache_of(http)) == 0
    assert lookups(http, "hit") == 0


async def test_invalidation_empties_the_cache(http: httpx.AsyncClient) -> None:
    cache = cache_of(http)
    await post(http, CATALOG)
    assert len(cache) == 1
    cache.invalidate()
    await post(http, CATALOG)
    assert (lookups(http, "miss"), lookups(http, "hit")) == (2, 0)


async def test_a_reloaded_catalog_drops_every_entry(http: httpx.AsyncClient) -> None:
    route = next(r for r in http.app.routes if getattr(r, "path", None) == "/graphql")  # type: ignore[attr-defined]
    await post(http, CATALOG)
    old: Services = route.app.services
    # The same files loaded again: another catalog object.
    route.app.services = Services(
        catalog=dataclasses.replace(old.catalog),
        store=old.store,
        registry=old.registry,
        events=old.events,
        sandbox=old.sandbox,
        apps=old.apps,
    )
    await post(http, CATALOG)
    assert (lookups(http, "miss"), lookups(http, "hit")) == (2, 0)


async def test_the_rate_limit_still_counts_cached_answers(tmp_path: Path) -> None:
    settings = dataclasses.replace(settings_for(tmp_path), rate_limits="anonymous=3/minute")
    async with client_for(settings) as http:
        statuses = [(await post(http, CATALOG)).status_code for _ in range(4)]
        assert statuses == [200, 200, 200, 429]
        assert lookups(http, "hit") == 2


async def test_a_cached_answer_is_charged_its_cost_like_an_executed_one(
    http: httpx.AsyncClient, tmp_path: Path
) -> None:
    await post(http, CATALOG)
    (answer,) = cache_of(http)._entries.values()
    # A budget that pays for the operation once, not twice.
    budget = f"anonymous={answer.cost * 3 // 2}/minute"
    settings = dataclasses.replace(settings_for(tmp_path / "limited"), cost_limits=budget)
    async with client_for(settings) as http:
        first, second = await post(http, CATALOG), await post(http, CATALOG)
        assert first.status_code == 200
        assert second.status_code == 429
        assert "cost" in second.json()["detail"]


async def test_the_cache_can_be_turned_off(tmp_path: Path) -> None:
    async with client_for(settings_for(tmp_path, response_cache_bytes=0)) as http:
        route = next(r for r in http.app.routes if getattr(r, "path", None) == "/graphql")  # type: ignore[attr-defined]
        assert route.app.response_cache is None
        assert (await post(http, CATALOG)).status_code == 200


# -- the decision, on documents and on the schema ---------------------------


@pytest.mark.parametrize(
    ("query", "name", "expected"),
    [
        ("{ agencies { code } }", None, True),
        ('query A { service(code: "X") { code agency { code } } __typename }', "A", True),
        ("query A { agencies { code } } query B { me { subject } }", "A", True),
        ("query A { agencies { code } } query B { me { subject } }", "B", False),
        ("query A { agencies { code } } query B { agencies { code } }", None, False),
        ('mutation { cancelApplication(id: "1") { id } }', None, False),
        ('subscription { applicationStatusChanged(id: "1") { id } }', None, False),
        ("{ __schema { types { name } } }", None, False),
        ("query Q { ...F } fragment F on Query { agencies { code } }", "Q", True),
        ("query Q { ...F } fragment F on Query { ...F }", "Q", False),
        ("query Q { ...Missing }", "Q", False),
        ('{ lookup(serviceCode: "X", input: {}) }', None, False),
    ],
)
def test_catalog_only_documents(query: str, name: str | None, expected: bool) -> None:
    assert catalog_only(parse(query), name) is expected


def _reachable(schema: strawberry.Schema, roots: frozenset[str]) -> set[str]:
    query = schema._schema.query_type
    assert query is not None
    seen: set[str] = set()
    todo: list[GraphQLNamedType] = [
        get_named_type(field.type) for name, field in query.fields.items() if name in roots
    ]
    while todo:
        named = todo.pop()
        if named.name in seen:
            continue
        seen.add(named.name)
        if isinstance(named, GraphQLObjectType):
            todo.extend(get_named_type(field.type) for field in named.fields.values())
    return seen


def test_everything_below_the_catalog_fields_is_catalog_data(http: httpx.AsyncClient) -> None:
    """A new field under a catalog type must be looked at before the cache may
    share it: this list changes only on purpose."""
    route = next(r for r in http.app.routes if getattr(r, "path", None) == "/graphql")  # type: ignore[attr-defined]
    schema = route.app.schema
    assert _reachable(schema, CATALOG_ROOT_FIELDS) == {
        "Agency", "Service", "ServiceConnection", "ServiceEdge", "PageInfo", "LocalizedText",
        "Form", "FormField", "Option", "ResultField", "ServiceKind", "FieldType", "BackendKind",
        "ID", "String", "Int", "Float", "Boolean",
    }  # fmt: skip
    query_type = schema.get_type_by_name("Query")
    fields = {f.python_name: f for f in query_type.fields}
    for name in CATALOG_ROOT_FIELDS - {"__typename"}:
        assert policy_of(fields[name]) == [Public], name
