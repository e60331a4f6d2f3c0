"""Operation limits: a refused operation runs no resolver, answers 400 (with
the spec's media type) and says which limit and its maximum."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncGenerator
from pathlib import Path
from typing import Any

import httpx
import pytest
import strawberry

from connectors.base import BackendRequest, BackendResponse, Connector
from gateway.app import create_app
from gateway.catalog.loader import Catalog
from gateway.db.migrate import upgrade_async
from gateway.settings import SettingsError, from_env
from legacy.samples import CITIZENS, sample_form
from schema.limits.config import OperationLimits
from schema.limits.time_budget import RootFieldDeadline, TimeBudget, bound_root_fields
from schema.root import KhaalgaSchema, build_schema
from tests.http.conftest import Spy, client_for, graphql, settings_for
from tests.support.gateway import Api, citizen_token

LAND = 'agency(code: "LAND")'


def deep(depth: int, root: str = LAND) -> str:
    """A query whose deepest field is at ``depth`` (the root field is at 0)."""
    inner = "code"
    for level in range(depth - 1, 0, -1):
        inner = f"{'services' if level % 2 else 'agency'} {{ {inner} }}"
    return f"{{ {root} {{ {inner} }} }}"


def refused(status: int, body: dict[str, Any], limit: str, maximum: int) -> None:
    assert status == 400
    assert "data" not in body
    assert len(body["errors"]) == 1, body
    error = body["errors"][0]
    assert error["extensions"] == {"code": "OPERATION_LIMIT", "limit": limit, "max": maximum}
    assert f"({maximum})" in error["message"]


async def test_depth_10_runs(tmp_path: Path) -> None:
    # The only deep paths in this schema go through lists: cost is lifted
    # here, and an unknown agency keeps the 10^5 nested items from running.
    settings = settings_for(tmp_path, limits=OperationLimits(cost=10**9))
    async with client_for(settings) as client:
        status, body = await graphql(client, deep(10, 'agency(code: "NONE")'))
    assert status == 200 and body == {"data": {"agency": None}}


async def test_depth_11_runs_nothing_and_says_why(dev: httpx.AsyncClient, spy: Spy) -> None:
    refused(*await graphql(dev, deep(11)), "depth", 10)
    assert spy.calls == 0


def aliased(count: int) -> str:
    return "{ agencies { " + " ".join(f"a{i}: code" for i in range(count)) + " } }"


async def test_100_aliases_run_nothing_and_say_why(dev: httpx.AsyncClient, spy: Spy) -> None:
    refused(*await graphql(dev, aliased(100)), "aliases", 15)
    assert spy.calls == 0


async def test_15_aliases_are_allowed_but_not_16(dev: httpx.AsyncClient) -> None:
    assert (await graphql(dev, aliased(15)))[0] == 200
    refused(*await graphql(dev, aliased(16)), "aliases", 15)


async def test_root_fields(dev: httpx.AsyncClient, spy: Spy) -> None:
    fields = ["agencies { code }", "services { totalCount }", f"{LAND} {{ code }}"]
    ten = "{ " + " ".join((fields * 4)[:10]) + " }"
    assert (await graphql(dev, ten))[0] == 200
    # Through a fragment too: 11 root fields, one of them spread in.
    eleven = ten[:-1] + " ...more } fragment more on Query { me { kind } }"
    spy.calls = 0
    refused(*await graphql(dev, eleven), "rootFields", 10)
    assert spy.calls == 0


async def test_tokens(dev: httpx.AsyncClient) -> None:
    many = "{ " + " ".join(["__typename"] * 1000) + " }"  # 1002 tokens
    refused(*await graphql(dev, many), "tokens", 1000)


async def test_directives(dev: httpx.AsyncClient) -> None:
    # 15 + 15 + 15 + 6, spread over nested selections: the field-repeats
    # limit allows no more than 15 copies of ``code`` in one of them.
    a, b, c, d = (" ".join(["code @include(if: true)"] * n) for n in (15, 15, 15, 6))
    fifty_one = f"{{ agencies {{ {a} services {{ {b} agency {{ {c} services {{ {d} }} }} }} }} }}"
    refused(*await graphql(dev, fifty_one), "directives", 50)
    twice = "{ __typename @skip(if: false) @skip(if: false) }"
    refused(*await graphql(dev, twice), "directiveRepeats", 1)


async def test_field_repeats(dev: httpx.AsyncClient, spy: Spy) -> None:
    def agencies(selection: str, copies: int, suffix: str = "") -> str:
        return "{ agencies { " + " ".join([selection] * copies) + " } }" + suffix

    status, body = await graphql(dev, agencies("code", 15))
    assert status == 200 and "errors" not in body
    spy.calls = 0
    refused(*await graphql(dev, agencies("code", 16)), "fieldRepeats", 15)
    # Fragments are merged into the selection they are in, as execution merges them.
    refused(*await graphql(dev, agencies("... { code }", 16)), "fieldRepeats", 15)
    refused(*await graphql(dev, agencies("... on Agency { code }", 16)), "fieldRepeats", 15)
    spread = agencies("...c", 8, " fragment c on Agency { code code }")
    refused(*await graphql(dev, spread), "fieldRepeats", 15)
    assert spy.calls == 0
    # The same name on different objects is no repeat.
    nested = "{ agencies { code services { code agency { code } } } }"
    assert (await graphql(dev, nested))[0] == 200


async def test_document_bytes(dev: httpx.AsyncClient) -> None:
    padded = "# " + "x" * 16_384 + "\n{ __typename }"  # a comment: no tokens
    refused(*await graphql(dev, padded), "documentBytes", 16_384)


COSTLY = """query($n: Int) { services(first: $n) { edges { node {
  form { fields { name options { value } } } } } } }"""


async def test_cost_counts_first_as_sent(dev: httpx.AsyncClient) -> None:
    # first x fields (10) x options (10): 10 -> ~1,200; 100 -> ~12,000
    status, body = await graphql(dev, COSTLY, {"n": 10})
    assert status == 200 and "errors" not in body
    refused(*await graphql(dev, COSTLY, {"n": 100}), "cost", 5000)


async def test_cost_of_nested_lists_runs_nothing(dev: httpx.AsyncClient, spy: Spy) -> None:
    nested = f"{{ {LAND} {{ services {{ agency {{ services {{ form {{ fields {{ options {{ value }} }} }} }} }} }} }} }}"  # noqa: E501
    refused(*await graphql(dev, nested), "cost", 5000)
    assert spy.calls == 0


async def test_limits_come_from_settings(tmp_path: Path) -> None:
    limits = OperationLimits(depth=3, aliases=1)
    async with client_for(settings_for(tmp_path, limits=limits)) as client:
        assert (await graphql(client, deep(3)))[0] == 200
        refused(*await graphql(client, deep(4)), "depth", 3)
        refused(*await graphql(client, "{ a: __typename b: __typename }"), "aliases", 1)


def test_limits_read_from_the_environment() -> None:
    settings = from_env(
        {"KHAALGA_MAX_DEPTH": "7", "KHAALGA_MAX_COST": "100", "KHAALGA_MAX_FIELD_REPEATS": "2"}
    )
    assert settings.limits == OperationLimits(depth=7, cost=100, field_repeats=2)
    with pytest.raises(SettingsError, match="KHAALGA_MAX_ALIASES"):
        from_env({"KHAALGA_MAX_ALIASES": "many"})


async def test_the_usual_client_queries_fit(dev: httpx.AsyncClient) -> None:
    # GraphiQL's own introspection query and a page of forms are not limited.
    from graphql import get_introspection_query

    status, body = await graphql(dev, get_introspection_query(descriptions=True))
    assert status == 200 and "errors" not in body
    form_page = """{ services(first: 20) { totalCount edges { cursor node { code kind
      name { mn en } form { fields { name type required label { mn en } } } } }
      pageInfo { hasNextPage endCursor } } }"""
    status, body = await graphql(dev, form_page)
    assert status == 200 and "errors" not in body, body


class Hanging(Connector):
    """An agency that never answers."""

    async def send(self, request: BackendRequest) -> BackendResponse:
        await asyncio.Event().wait()
        raise AssertionError("unreachable")

    async def aclose(self) -> None:
        pass


async def test_the_time_budget_cuts_off_the_slow_root_field_only(tmp_path: Path) -> None:
    settings = settings_for(tmp_path, limits=OperationLimits(seconds=1))
    await upgrade_async(settings.database_url)
    app = create_app(settings, connector_overrides={"LAND": Hanging()})
    service = app.state.services.catalog.service("LAND-001")
    form = sample_form([f.model_dump(mode="json") for f in service.form])
    query = """query($form: LandParcelInfoInput!) {
      landParcelInfo(input: $form) { areaM2 } agency(code: "TAX") { code } }"""
    token = citizen_token(settings, CITIZENS[0])
    async with (
        app.router.lifespan_context(app),
        httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://k") as http,
    ):
        body = (await Api(http, token).post(query, {"form": form})).json()
    assert body["data"] == {"landParcelInfo": None, "agency": {"code": "TAX"}}
    (error,) = body["errors"]
    assert error["path"] == ["landParcelInfo"]
    assert error["extensions"] == {"code": "OPERATION_LIMIT", "limit": "time", "max": 1}


@strawberry.type
class Later:
    @strawberry.field
    async def value(self) -> int:
        await asyncio.sleep(0.01)
        return 2


@strawberry.type
class Query:
    @strawberry.field
    async def slow(self) -> int | None:
        await asyncio.sleep(0.01)
        return 1

    @strawberry.field
    def quick(self) -> Later:
        return Later()


@strawberry.type
class Subscription:
    @strawberry.subscription
    async def ticks(self) -> AsyncGenerator[int, None]:
        for tick in range(2):
            await asyncio.sleep(0.01)
            yield tick


async def test_the_time_budget_bounds_root_fields_not_what_is_below_them() -> None:
    # A budget of 0 is spent at the first await: whatever is bounded is cut.
    bound_root_fields(Query)
    schema = KhaalgaSchema(Query, subscription=Subscription, extensions=[lambda: TimeBudget(0)])
    result = await schema.execute("{ slow quick { value } }")
    assert result.data == {"slow": None, "quick": {"value": 2}}
    assert result.errors is not None
    (error,) = result.errors
    assert error.path == ["slow"]
    assert error.extensions == {"code": "OPERATION_LIMIT", "limit": "time", "max": 0}
    stream = await schema.subscribe("subscription { ticks }")
    assert not isinstance(stream, strawberry.types.ExecutionResult)
    ticks = [(r.data, r.errors) async for r in stream]
    assert ticks == [({"ticks": 0}, None), ({"ticks": 1}, None)]


def test_the_time_budget_is_on_each_query_and_mutation_root_field_once(catalog: Catalog) -> None:
    # Root types share their base classes' field objects between builds.
    build_schema(catalog)
    schema = build_schema(catalog)
    for root, bounded in ((schema.query, True), (schema.mutation, True),
                          (schema.subscription, False)):  # fmt: skip
        for field in root.__strawberry_definition__.fields:
            deadlines = [e for e in field.extensions if isinstance(e, RootFieldDeadline)]
            assert len(deadlines) == bounded, field.name
            assert not bounded or field.extensions[-1] is deadlines[0], field.name
