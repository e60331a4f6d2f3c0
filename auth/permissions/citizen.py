"""The citizen whose data it is: lookups, submissions, their own records."""

from __future__ import annotations

from auth.permissions.base import KindPolicy
from auth.principal import Principal, PrincipalKind


class CitizenOnly(KindPolicy):
    kinds = frozenset({PrincipalKind.CITIZEN})

    def admits(self, principal: Principal) -> bool:
        return bool(principal.subject)
