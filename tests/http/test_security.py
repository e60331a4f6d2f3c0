"""graphql-cop's checks, reproduced: each test sends what graphql-cop sends and
asserts the answer it would not flag. Production defaults unless said."""

from __future__ import annotations

from pathlib import Path

import httpx
import pytest

from tests.http.conftest import client_for, graphql, settings_for


async def test_field_suggestions_are_hidden_in_production(prod: httpx.AsyncClient) -> None:
    for query in (
        "query cop { __schema { directive } }",  # graphql-cop's own
        "{ agencie { code } }",
        "{ services(firts: 1) { totalCount } }",
        "{ services(filter: {kind: LOOKU}) { totalCount } }",
        '{ agency(code: "LAND") { cod } }',
    ):
        _, body = await graphql(prod, query)
        assert body["errors"], query
        assert "Did you mean" not in str(body), body


async def test_field_suggestions_help_in_development(dev: httpx.AsyncClient) -> None:
    _, body = await graphql(dev, "{ agencie { code } }")
    assert "Did you mean 'agencies'" in body["errors"][0]["message"]


async def test_introspection_is_off_in_production_and_can_be_turned_on(
    prod: httpx.AsyncClient, tmp_path: Path
) -> None:
    query = "query cop { __schema { types { name fields { name } } } }"
    status, body = await graphql(prod, query)
    assert status == 400 and "data" not in body
    assert "introspection" in body["errors"][0]["message"].lower()
    # __typename is not introspection: clients need it for unions.
    assert (await graphql(prod, "{ __typename }"))[1] == {"data": {"__typename": "Query"}}
    settings = settings_for(tmp_path, env="production", introspection=True)
    async with client_for(settings) as client:
        status, body = await graphql(client, query)
        assert status == 200 and body["data"]["__schema"]["types"]


async def test_graphiql_is_not_served_in_production_unless_asked(
    prod: httpx.AsyncClient, dev: httpx.AsyncClient, tmp_path: Path
) -> None:
    page = {"accept": "text/html,application/xhtml+xml,*/*;q=0.8"}
    refused = await prod.get("/graphql", headers=page)
    assert refused.status_code == 404
    assert "graphiql" not in refused.text.lower()
    assert "graphiql" in (await dev.get("/graphql", headers=page)).text.lower()
    settings = settings_for(tmp_path, env="production", graphiql=True)
    async with client_for(settings) as client:
        assert "graphiql" in (await client.get("/graphql", headers=page)).text.lower()


async def test_get_runs_queries_only(prod: httpx.AsyncClient) -> None:
    # graphql-cop flags GET queries as a CSRF risk; here GET is deliberate (the
    # spec, caching) and safe: queries have no side effects, and credentials
    # are bearer tokens a cross-site page cannot attach.
    ok = await prod.get("/graphql", params={"query": "query cop { __typename }"})
    assert ok.json() == {"data": {"__typename": "Query"}}
    mutation = await prod.get("/graphql", params={"query": "mutation cop { __typename }"})
    assert mutation.status_code == 405
    assert "data" not in mutation.json()


async def test_url_encoded_post_is_refused(prod: httpx.AsyncClient) -> None:
    response = await prod.post(
        "/graphql",
        content=b"query=query+cop+%7B+__typename+%7D",
        headers={"content-type": "application/x-www-form-urlencoded"},
    )
    assert response.status_code == 415
    assert "data" not in response.json()


async def test_101_aliases_are_refused(prod: httpx.AsyncClient) -> None:
    query = "query cop { " + " ".join(f"alias{i}:__typename" for i in range(101)) + " }"
    status, body = await graphql(prod, query)
    assert status == 400 and "data" not in body
    assert {"aliases", "rootFields"} == {e["extensions"]["limit"] for e in body["errors"]}


async def test_field_duplication_is_refused(prod: httpx.AsyncClient) -> None:
    # graphql-cop's own: at the root, the root-field limit refused it already.
    query = "query cop { " + "__typename \n" * 500 + "}"
    status, body = await graphql(prod, query)
    assert status == 400 and "data" not in body
    assert {"fieldRepeats", "rootFields"} == {e["extensions"]["limit"] for e in body["errors"]}
    # One level down, under the token and cost limits, only this limit holds.
    query = "query cop { agencies { " + "__typename \n" * 500 + "} }"
    status, body = await graphql(prod, query)
    assert status == 400 and "data" not in body
    (error,) = body["errors"]
    assert error["extensions"] == {"code": "OPERATION_LIMIT", "limit": "fieldRepeats", "max": 15}


async def test_a_batch_of_10_is_refused(prod: httpx.AsyncClient) -> None:
    response = await prod.post("/graphql", json=[{"query": "query cop { __typename }"}] * 10)
    assert response.status_code == 400
    assert response.headers["content-type"] == "application/problem+json"


async def test_directive_overloading_is_one_error(prod: httpx.AsyncClient) -> None:
    query = "query cop { __typename @aa@aa@aa@aa@aa@aa@aa@aa@aa@aa }"
    status, body = await graphql(prod, query)
    assert status == 400
    assert [e["extensions"]["limit"] for e in body["errors"]] == ["directiveRepeats"]


async def test_circular_introspection_is_refused(dev: httpx.AsyncClient) -> None:
    # Where introspection is on, graphql-core's MaxIntrospectionDepthRule holds.
    query = """query cop { __schema { types { fields { type { fields { type { fields {
      type { fields { name } } } } } } } } } }"""
    status, body = await graphql(dev, query)
    assert status == 400 and "data" not in body
    assert "introspection depth" in body["errors"][0]["message"].lower()


async def test_no_tracing_in_answers(prod: httpx.AsyncClient) -> None:
    for query in ("query cop { __typename }", "query cop { __typenam }"):
        _, body = await graphql(prod, query)
        assert "tracing" not in str(body).lower() and "extensions" not in body


SECRET = "connection to postgresql://khaalga:s3cret@db.internal:5432 refused"


class _Exploding(dict[str, object]):
    def get(self, key: str, default: object = None) -> object:
        raise RuntimeError(SECRET)


@pytest.mark.parametrize("accept", ["application/json", "application/graphql-response+json"])
async def test_unexpected_exceptions_show_no_details_in_production(
    prod: httpx.AsyncClient, monkeypatch: pytest.MonkeyPatch, accept: str
) -> None:
    view = prod.app.state.services.view  # type: ignore[attr-defined]
    monkeypatch.setattr(view, "agencies", _Exploding())
    status, body = await graphql(prod, 'query cop { agency(code: "LAND") { code } }', accept=accept)
    assert status == 200  # a field error: data is there (null)
    assert body["data"] == {"agency": None}
    (error,) = body["errors"]
    assert error["message"] == "Unexpected error / Гэнэтийн алдаа гарлаа"
    assert error["path"] == ["agency"]
    text = str(body)
    for leak in ("s3cret", "db.internal", "RuntimeError", "Traceback", "exception", "stacktrace"):
        assert leak not in text


async def test_coded_and_request_errors_are_not_masked(prod: httpx.AsyncClient) -> None:
    _, body = await graphql(prod, "{ myApplications(first: 1) { totalCount } }")
    assert body["errors"][0]["extensions"]["code"] == "UNAUTHENTICATED"
    assert "Authentication is required" in body["errors"][0]["message"]
    _, body = await graphql(prod, "query($n: Int) { services(first: $n) { totalCount } }",
                            {"n": "many"})  # fmt: skip
    assert "Int cannot represent" in body["errors"][0]["message"]
