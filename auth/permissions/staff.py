"""Officers and operators: the agencies' back-end health."""

from __future__ import annotations

from auth.permissions.base import KindPolicy
from auth.principal import Principal, PrincipalKind


class OfficerOrOperator(KindPolicy):
    kinds = frozenset({PrincipalKind.OFFICER, PrincipalKind.OPERATOR})

    def admits(self, principal: Principal) -> bool:
        return principal.kind is PrincipalKind.OPERATOR or bool(principal.agency)
