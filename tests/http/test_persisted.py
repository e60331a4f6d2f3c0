"""Trusted documents: Apollo's automatic persisted queries, and the operator's
allow-list in which nothing else runs."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import httpx
import pytest

from gateway.app import create_app
from gateway.persisted import DocumentStore, document_hash
from gateway.settings import SettingsError, from_env
from tests.http.conftest import Spy, client_for, graphql, settings_for

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


def test_registrations_are_bounded() -> None:
    store = DocumentStore(capacity=2)
    for n in range(3):
        store.register(str(n), f"doc {n}")
    assert store.get("0", registered=True) is None
    assert store.get("2", registered=True) == "doc 2"


def test_the_mode_is_read_from_the_environment() -> None:
    assert from_env({}).trusted_documents == "apq"
    assert from_env({"KHAALGA_TRUSTED_DOCUMENTS": "allowlist"}).trusted_documents == "allowlist"
    with pytest.raises(SettingsError):
        from_env({"KHAALGA_TRUSTED_DOCUMENTS": "sometimes"})
