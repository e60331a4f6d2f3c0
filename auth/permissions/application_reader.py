"""Reading (or following) one application by id: its citizen, an officer of
its agency, an operator, or an app holding ``applications:read``. The store
scopes the row to the caller (an app: only what it filed itself), so
someone else's application looks missing."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from auth.permissions.scopes import READ_APPLICATIONS, ScopedPolicy
from auth.principal import Principal, PrincipalKind


class ApplicationReader(ScopedPolicy):
    kinds = frozenset(
        {PrincipalKind.CITIZEN, PrincipalKind.OFFICER, PrincipalKind.OPERATOR, PrincipalKind.APP}
    )

    def admits(self, principal: Principal) -> bool:
        return principal.kind is not PrincipalKind.APP or bool(principal.subject)

    def app_scopes(self, arguments: Mapping[str, Any]) -> list[str]:
        return [READ_APPLICATIONS]
