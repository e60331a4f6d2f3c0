"""Each distinct document is parsed and validated once per schema, and an
invalid one keeps being refused with the same errors."""

from __future__ import annotations

from typing import Any

import pytest
import strawberry
import strawberry.schema.schema as strawberry_schema

from schema.document_cache import DocumentCache, validation_cache


@strawberry.type
class Query:
    @strawberry.field
    def hello(self, name: str = "world") -> str:
        return f"hello {name}"


@pytest.fixture
def validations(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    seen: list[str] = []
    real = strawberry_schema.validate_document

    def counting(schema: Any, document: Any, rules: Any) -> Any:
        seen.append(document.loc.source.body)
        return real(schema, document, rules)

    monkeypatch.setattr(strawberry_schema, "validate_document", counting)
    return seen


def schema() -> strawberry.Schema:
    return strawberry.Schema(Query, extensions=[DocumentCache, validation_cache(8)])


async def test_a_document_is_validated_once_whatever_its_variables(validations: list[str]) -> None:
    gateway = schema()
    query = "query Hello($n: String!) { hello(name: $n) }"
    for name in ("a", "b", "c"):
        result = await gateway.execute(query, variable_values={"n": name})
        assert result.data == {"hello": f"hello {name}"}
    assert validations == [query]
    await gateway.execute("{ hello }")
    assert validations == [query, "{ hello }"]


async def test_an_invalid_document_is_refused_every_time(validations: list[str]) -> None:
    gateway = schema()
    answers = [await gateway.execute("{ goodbye }") for _ in range(2)]
    assert [[e.message for e in a.errors or []] for a in answers] == [
        ["Cannot query field 'goodbye' on type 'Query'."]
    ] * 2
    assert validations == ["{ goodbye }"]


async def test_each_schema_keeps_its_own_cache(validations: list[str]) -> None:
    for gateway in (schema(), schema()):
        await gateway.execute("{ hello }")
    assert validations == ["{ hello }", "{ hello }"]
