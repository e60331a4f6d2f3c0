"""An officer of an agency: their agency's applications."""

from __future__ import annotations

from auth.permissions.base import KindPolicy
from auth.principal import Principal, PrincipalKind


class OfficerOnly(KindPolicy):
    kinds = frozenset({PrincipalKind.OFFICER})

    def admits(self, principal: Principal) -> bool:
        return bool(principal.agency and principal.subject)
