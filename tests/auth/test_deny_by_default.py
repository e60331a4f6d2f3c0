"""A root field that declares no policy is closed to everyone."""

from __future__ import annotations

from dataclasses import dataclass

import strawberry

from auth.permissions.enforce import deny_unguarded
from auth.principal import Principal, PrincipalKind


@dataclass
class _Context:
    principal: Principal


async def test_a_field_without_a_policy_is_denied_to_every_kind() -> None:
    @strawberry.type
    class Query:
        @strawberry.field
        def forgotten(self) -> str:
            return "secret"

    assert deny_unguarded(Query) == ["forgotten"]
    schema = strawberry.Schema(query=Query)
    for kind in PrincipalKind:
        result = await schema.execute("{ forgotten }", context_value=_Context(Principal(kind, "x")))
        assert result.data is None and result.errors
        code = "UNAUTHENTICATED" if kind is PrincipalKind.ANONYMOUS else "FORBIDDEN"
        assert result.errors[0].extensions == {"code": code}
