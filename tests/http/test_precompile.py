"""The allow-list is parsed and validated when the gateway starts: the first
request of each document finds it ready, and a document the schema no
longer accepts is named (by its hash alone) before any citizen sends it."""

from __future__ import annotations

import dataclasses
import json
import logging
import uuid
from pathlib import Path
from typing import Any

import pytest
from graphql import parse, validate

from gateway.persisted import document_hash
from tests.http.conftest import client_for, graphql, settings_for


def _allowlist(tmp_path: Path, *documents: str) -> Path:
    path = tmp_path / "persisted-documents.json"
    path.write_text(json.dumps({document_hash(d): d for d in documents}), encoding="utf-8")
    return path


def _fresh(document: str) -> str:
    """``document`` under a comment no other test's document has: the
    parser's cache is the process's, and this one must start cold."""
    return f"# {uuid.uuid4()}\n{document}"


# Production adds introspection's rule to validation: the documents must be
# validated under the same rules as requests are, or the cache misses.
@pytest.mark.parametrize("env", ["development", "production"])
async def test_the_first_request_finds_its_document_parsed_and_validated(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, env: str
) -> None:
    calls = {"parse": 0, "validate": 0}

    def counted(name: str, real: Any) -> Any:
        def call(*args: Any, **kwargs: Any) -> Any:
            calls[name] += 1
            return real(*args, **kwargs)

        return call

    monkeypatch.setattr("schema.document_cache.parse", counted("parse", parse))
    monkeypatch.setattr("strawberry.schema.schema.validate", counted("validate", validate))
    land = _fresh('query Land { agency(code: "LAND") { code name { en } } }')
    codes = _fresh("query Codes { agencies { code } }")
    settings = settings_for(
        tmp_path,
        env=env,
        trusted_documents="allowlist",
        trusted_documents_file=_allowlist(tmp_path, land, codes),
    )
    async with client_for(settings) as client:
        assert calls == {"parse": 2, "validate": 2}  # at start, before any request
        status, body = await graphql(client, land)
        assert status == 200 and body["data"]["agency"]["code"] == "LAND"
        status, body = await graphql(client, codes)
        assert status == 200 and len(body["data"]["agencies"]) == 13
        assert calls == {"parse": 2, "validate": 2}


async def test_a_document_the_schema_refuses_is_named_by_hash_at_start(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    good = _fresh('query Land { agency(code: "LAND") { code } }')
    # A literal stands in for whatever an app put in its document: not logged.
    stale = _fresh('query Gone { agency(code: "ZZ-LITERAL-99") { noSuchField } }')
    settings = settings_for(
        tmp_path,
        trusted_documents="allowlist",
        trusted_documents_file=_allowlist(tmp_path, good, stale),
    )
    with caplog.at_level(logging.INFO, logger="khaalga.persisted"):
        async with client_for(settings) as client:
            logged = "\n".join(
                r.getMessage() for r in caplog.records if r.name == "khaalga.persisted"
            )
            assert document_hash(stale) in logged and document_hash(good) not in logged
            assert "ZZ-LITERAL-99" not in logged and "noSuchField" not in logged
            assert "2 allow-listed documents precompiled, 1 failing" in logged
            # The gateway started: the good document runs, the stale one gets its errors.
            assert (await graphql(client, good))[1] == {"data": {"agency": {"code": "LAND"}}}
            status, body = await graphql(client, stale)
            assert status == 400 and "noSuchField" in body["errors"][0]["message"]


async def test_the_token_limit_holds_for_precompiled_documents(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    long = _fresh("query Long { " + " ".join(f"a{n}: __typename" for n in range(40)) + " }")
    settings = settings_for(
        tmp_path, trusted_documents="allowlist", trusted_documents_file=_allowlist(tmp_path, long)
    )
    settings = dataclasses.replace(settings, limits=dataclasses.replace(settings.limits, tokens=50))
    with caplog.at_level(logging.WARNING, logger="khaalga.persisted"):
        async with client_for(settings) as client:
            assert document_hash(long) in caplog.text  # parsed at start under the request's limit
            _, body = await graphql(client, long)
            assert body["errors"][0]["extensions"] == {
                "code": "OPERATION_LIMIT",
                "limit": "tokens",
                "max": 50,
            }
