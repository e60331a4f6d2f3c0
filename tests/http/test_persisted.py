"""Trusted documents: Apollo's automatic persisted queries, and the operator's
allow-list in which nothing else runs."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import httpx
import pytest
import redis

from gateway.app import create_app
from gateway.persisted import DocumentStore, SharedDocuments, document_hash
from gateway.settings import SettingsError, from_env
from tests.http.conftest import Spy, client_for, graphql, settings_for
from tests.support.gateway import free_port

QUERY = 'query Land { agency(code: "LAND") { code } }'
HASH = document_hash(QUERY)
LAND = {"data": {"agency": {"code": "LAND"}}}


def persisted(sha256: str = HASH, version: int = 1) -> dict[str, Any]:
    return {"persistedQuery": {"version": version, "sha256Hash": sha256}}


def code_of(body: dict[str, Any]) -> str:
    return str(body["errors"][0]["extensions"]["code"])


async def test_apq_registers_then_serves_by_hash_over_post_and_get(
    dev: httpx.AsyncClient,
) -> None:
    status, body = await graphql(dev, None, extensions=persisted())
    assert (status, code_of(body)) == (400, "PERSISTED_QUERY_NOT_FOUND")
    assert body["errors"][0]["message"] == "PersistedQueryNotFound"  # what Apollo clients read
    assert (await graphql(dev, QUERY, extensions=persisted()))[1] == LAND
    assert (await graphql(dev, None, extensions=persisted()))[1] == LAND
    response = await dev.get("/graphql", params={"extensions": json.dumps(persisted())})
    assert response.json() == LAND


async def test_a_hash_that_is_not_the_querys_is_refused_and_not_registered(
    dev: httpx.AsyncClient, spy: Spy
) -> None:
    other = document_hash("{ __typename }")
    _, body = await graphql(dev, QUERY, extensions=persisted(other))
    assert code_of(body) == "PERSISTED_QUERY_HASH_MISMATCH"
    assert spy.calls == 0
    assert code_of((await graphql(dev, None, extensions=persisted(other)))[1]) == (
        "PERSISTED_QUERY_NOT_FOUND"
    )


async def test_an_invalid_document_is_not_registered(dev: httpx.AsyncClient) -> None:
    bad = "{ noSuchField }"
    await graphql(dev, bad, extensions=persisted(document_hash(bad)))
    _, body = await graphql(dev, None, extensions=persisted(document_hash(bad)))
    assert code_of(body) == "PERSISTED_QUERY_NOT_FOUND"


async def test_an_unknown_protocol_version_is_not_supported(dev: httpx.AsyncClient) -> None:
    _, body = await graphql(dev, QUERY, extensions=persisted(version=2))
    assert code_of(body) == "PERSISTED_QUERY_NOT_SUPPORTED"


async def test_off_refuses_hashes_so_clients_fall_back(tmp_path: Path) -> None:
    async with client_for(settings_for(tmp_path, trusted_documents="off")) as client:
        _, body = await graphql(client, QUERY, extensions=persisted())
        assert code_of(body) == "PERSISTED_QUERY_NOT_SUPPORTED"
        assert (await graphql(client, QUERY))[1] == LAND


@pytest.fixture
def allowlist(tmp_path: Path) -> Path:
    path = tmp_path / "persisted-documents.json"
    path.write_text(json.dumps({HASH: QUERY}), encoding="utf-8")
    return path


async def test_allowlist_runs_only_the_operators_documents(tmp_path: Path, allowlist: Path) -> None:
    settings = settings_for(
        tmp_path, trusted_documents="allowlist", trusted_documents_file=allowlist
    )
    async with client_for(settings) as client:
        assert (await graphql(client, None, extensions=persisted()))[1] == LAND
        assert (await graphql(client, QUERY))[1] == LAND  # in full, when listed
        other = "{ agencies { code } }"
        status, body = await graphql(client, other)
        assert (status, code_of(body)) == (400, "UNTRUSTED_DOCUMENT")
        # ...and cannot be registered the APQ way either.
        _, body = await graphql(client, other, extensions=persisted(document_hash(other)))
        assert code_of(body) == "UNTRUSTED_DOCUMENT"
        _, body = await graphql(client, None, extensions=persisted(document_hash(other)))
        assert code_of(body) == "PERSISTED_QUERY_NOT_FOUND"


def test_allowlist_needs_a_good_file(tmp_path: Path, allowlist: Path) -> None:
    with pytest.raises(SettingsError, match="needs"):
        create_app(settings_for(tmp_path, trusted_documents="allowlist"))
    allowlist.write_text(json.dumps({"0" * 64: QUERY}), encoding="utf-8")
    with pytest.raises(SettingsError, match="not the sha256"):
        create_app(
            settings_for(tmp_path, trusted_documents="allowlist", trusted_documents_file=allowlist)
        )


def test_apollo_manifests_are_read_too(tmp_path: Path) -> None:
    from gateway.persisted import load_allowlist

    path = tmp_path / "manifest.json"
    operations = [{"id": HASH, "name": "Land", "type": "query", "body": QUERY}]
    manifest = {"format": "apollo-persisted-query-manifest", "version": 1, "operations": operations}
    path.write_text(json.dumps(manifest), encoding="utf-8")
    assert load_allowlist(path) == {HASH: QUERY}


async def test_registrations_are_bounded() -> None:
    store = DocumentStore(capacity=2)
    for n in range(3):
        await store.register(str(n), f"doc {n}")
    assert await store.get("0", registered=True) is None
    assert await store.get("2", registered=True) == "doc 2"


def test_the_mode_is_read_from_the_environment() -> None:
    assert from_env({}).trusted_documents == "apq"
    assert from_env({"KHAALGA_TRUSTED_DOCUMENTS": "allowlist"}).trusted_documents == "allowlist"
    with pytest.raises(SettingsError):
        from_env({"KHAALGA_TRUSTED_DOCUMENTS": "sometimes"})


def test_the_apq_ttl_is_read_from_the_environment() -> None:
    assert from_env({}).apq_ttl == 86_400
    assert from_env({"KHAALGA_APQ_TTL": "600"}).apq_ttl == 600
    with pytest.raises(SettingsError, match="KHAALGA_APQ_TTL"):
        from_env({"KHAALGA_APQ_TTL": "0"})


async def test_two_gateway_instances_share_registrations_through_redis(
    tmp_path: Path, redis_url: str, redis_prefix: str
) -> None:
    settings = settings_for(tmp_path, redis_url=redis_url, redis_prefix=redis_prefix)
    async with client_for(settings) as one, client_for(settings) as two:
        assert (await graphql(one, QUERY, extensions=persisted()))[1] == LAND
        assert (await graphql(two, None, extensions=persisted()))[1] == LAND
    # Without Redis, each instance has only its own registrations.
    alone = settings_for(tmp_path)
    async with client_for(alone) as one, client_for(alone) as two:
        assert (await graphql(one, QUERY, extensions=persisted()))[1] == LAND
        _, body = await graphql(two, None, extensions=persisted())
        assert code_of(body) == "PERSISTED_QUERY_NOT_FOUND"


async def test_redis_keeps_registrations_bounded(redis_url: str, redis_prefix: str) -> None:
    shared = SharedDocuments(redis_url, redis_prefix, ttl=600, capacity=2)
    try:
        for n in range(3):
            await shared.put(f"{n:064x}", f"{{ a{n}: __typename }}")
        assert await shared.get(f"{0:064x}") is None  # the oldest, dropped
        assert await shared.get(f"{2:064x}") == "{ a2: __typename }"
        # A document too large is kept nowhere, not even in this process.
        store = DocumentStore(shared=shared, max_bytes=16)
        large = "{ " + "__typename " * 5 + "}"
        await store.register(document_hash(large), large)
        assert await store.get(document_hash(large), registered=True) is None
        assert await shared.get(document_hash(large)) is None
    finally:
        await shared.aclose()
    client = redis.Redis.from_url(redis_url)
    try:
        ttl = client.ttl(f"{redis_prefix}:apq:{2:064x}")
        assert isinstance(ttl, int) and 0 < ttl <= 600  # every registration expires
        assert client.zcard(f"{redis_prefix}:apq:index") == 2
    finally:
        client.close()


async def test_without_redis_registrations_stay_in_memory(tmp_path: Path) -> None:
    # Nothing listens on the port: registering and reading in Redis fail.
    settings = settings_for(tmp_path, redis_url=f"redis://127.0.0.1:{free_port()}/0")
    async with client_for(settings) as client:
        assert (await graphql(client, QUERY, extensions=persisted()))[1] == LAND
        assert (await graphql(client, None, extensions=persisted()))[1] == LAND
        other = "{ agencies { code } }"
        status, body = await graphql(client, None, extensions=persisted(document_hash(other)))
        assert (status, code_of(body)) == (400, "PERSISTED_QUERY_NOT_FOUND")
