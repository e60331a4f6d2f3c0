"""A developer (a citizen signed in with the national ID) or an operator: the
developer program's own-app fields. Whether the app is the caller's is
decided in the resolver, which answers NOT_FOUND for someone else's app so
client ids cannot be probed."""

from __future__ import annotations

from auth.permissions.base import KindPolicy
from auth.principal import Principal, PrincipalKind


class DeveloperOrOperator(KindPolicy):
    kinds = frozenset({PrincipalKind.CITIZEN, PrincipalKind.OPERATOR})

    def admits(self, principal: Principal) -> bool:
        return bool(principal.subject)
