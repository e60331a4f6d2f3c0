"""Transport errors are RFC 9457 problems with a bilingual title, and the
media types follow the GraphQL-over-HTTP spec."""

from __future__ import annotations

import httpx
import pytest

from tests.http.conftest import GRAPHQL_RESPONSE

TYPENAME = {"query": "{ __typename }"}


def assert_problem(response: httpx.Response, status: int) -> dict[str, object]:
    assert response.status_code == status, response.text
    assert response.headers["content-type"] == "application/problem+json"
    body: dict[str, object] = response.json()
    assert body["status"] == status and body["type"] == "about:blank"
    english, _, mongolian = str(body["title"]).partition(" / ")
    assert english and mongolian, body["title"]
    assert body["detail"]
    return body


async def test_a_malformed_json_body_is_a_400_problem(dev: httpx.AsyncClient) -> None:
    response = await dev.post(
        "/graphql", content=b'{"query": ', headers={"content-type": "application/json"}
    )
    assert_problem(response, 400)


@pytest.mark.parametrize("body", [b"", b"[]", b'"{ __typename }"', b"42"])
async def test_a_body_that_is_not_one_json_object_is_a_400(
    dev: httpx.AsyncClient, body: bytes
) -> None:
    response = await dev.post(
        "/graphql", content=body, headers={"content-type": "application/json"}
    )
    assert_problem(response, 400)


async def test_a_batch_is_refused_whole_and_runs_nothing(dev: httpx.AsyncClient) -> None:
    response = await dev.post("/graphql", json=[TYPENAME] * 10)
    assert "batched operations are not supported" in str(assert_problem(response, 400)["detail"])


@pytest.mark.parametrize(
    "content_type",
    [
        "text/plain",
        "application/x-www-form-urlencoded",
        "multipart/form-data; boundary=x",
        "application/json; charset=latin-1",
        None,
    ],
)
async def test_posts_other_than_json_are_415(
    dev: httpx.AsyncClient, content_type: str | None
) -> None:
    headers = {"content-type": content_type} if content_type else {}
    response = await dev.post("/graphql", content=b'{"query": "{ __typename }"}', headers=headers)
    assert_problem(response, 415)
    assert response.headers["accept"] == "application/json"


async def test_a_body_over_the_limit_is_413_before_it_is_read(tmp_path: object) -> None:
    from pathlib import Path

    from tests.http.conftest import client_for, settings_for

    settings = settings_for(Path(str(tmp_path)), max_body_bytes=64)
    async with client_for(settings) as client:
        big = {"query": "{ __typename }", "variables": {"pad": "x" * 100}}
        assert_problem(await client.post("/graphql", json=big), 413)

        async def chunks():  # type: ignore[no-untyped-def]  # no Content-Length
            yield b'{"query": "{ __typename }", "variables": {"pad": "'
            yield b"x" * 100 + b'"}}'

        streamed = await client.post(
            "/graphql", content=chunks(), headers={"content-type": "application/json"}
        )
        assert_problem(streamed, 413)
        assert (await client.post("/graphql", json=TYPENAME)).status_code == 200


@pytest.mark.parametrize("method", ["PUT", "DELETE", "PATCH"])
async def test_other_methods_are_405_with_allow(dev: httpx.AsyncClient, method: str) -> None:
    response = await dev.request(method, "/graphql", json=TYPENAME)
    assert_problem(response, 405)
    assert response.headers["allow"] == "GET, POST"


async def test_queries_run_over_get(dev: httpx.AsyncClient) -> None:
    query = "query($c: ID!) { agency(code: $c) { code } }"
    response = await dev.get("/graphql", params={"query": query, "variables": '{"c": "LAND"}'})
    assert response.status_code == 200
    assert response.json() == {"data": {"agency": {"code": "LAND"}}}


async def test_a_mutation_over_get_is_405_allow_post_and_runs_nothing(
    dev: httpx.AsyncClient,
) -> None:
    mutation = 'mutation { cancelApplication(id: "x") { status } }'
    response = await dev.get("/graphql", params={"query": mutation})
    assert_problem(response, 405)
    assert response.headers["allow"] == "POST"


async def test_the_response_type_follows_accept(dev: httpx.AsyncClient) -> None:
    cases = {
        None: "application/json",
        "*/*": "application/json",
        "application/json": "application/json",
        GRAPHQL_RESPONSE: GRAPHQL_RESPONSE,
        f"{GRAPHQL_RESPONSE}, application/json;q=0.9": GRAPHQL_RESPONSE,
        f"application/json, {GRAPHQL_RESPONSE};q=0.5": "application/json",
    }
    for accept, expected in cases.items():
        headers = {"accept": accept} if accept else {}
        response = await dev.post("/graphql", json=TYPENAME, headers=headers)
        assert response.status_code == 200
        assert response.headers["content-type"].split(";")[0] == expected, accept


async def test_an_accept_that_allows_no_json_is_406(dev: httpx.AsyncClient) -> None:
    response = await dev.post("/graphql", json=TYPENAME, headers={"accept": "text/xml"})
    assert_problem(response, 406)


@pytest.mark.parametrize(
    ("body", "what"),
    [
        ({"query": "{"}, "parse"),
        ({"query": "{ noSuchField }"}, "validation"),
        ({"query": "query($c: ID!) { agency(code: $c) { code } }", "variables": {}}, "coercion"),
        ({"query": "query A { __typename }", "operationName": "B"}, "operation name"),
    ],
)
async def test_request_errors_are_400_with_the_new_type_200_with_json_and_have_no_data(
    dev: httpx.AsyncClient, body: dict[str, object], what: str
) -> None:
    new = await dev.post("/graphql", json=body, headers={"accept": GRAPHQL_RESPONSE})
    assert new.status_code == 400, what
    assert new.headers["content-type"].startswith(GRAPHQL_RESPONSE)
    assert "data" not in new.json() and new.json()["errors"]
    legacy = await dev.post("/graphql", json=body, headers={"accept": "application/json"})
    assert legacy.status_code == 200, what
    assert "data" not in legacy.json() and legacy.json()["errors"]


async def test_a_field_error_is_200_with_data_even_with_the_new_type(
    dev: httpx.AsyncClient,
) -> None:
    # Needs a token: a field error (with a path), not a request error.
    response = await dev.post(
        "/graphql",
        json={"query": "{ agencies { code } myApplications(first: 1) { totalCount } }"},
        headers={"accept": GRAPHQL_RESPONSE},
    )
    assert response.status_code == 200
    body = response.json()
    assert body["errors"][0]["extensions"]["code"] == "UNAUTHENTICATED"
    assert "data" in body
