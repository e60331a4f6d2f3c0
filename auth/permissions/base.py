"""A policy is the set of principal kinds it admits.

Refusals are raised here, not through strawberry's ``on_unauthorized``,
because the code depends on the caller: no token at all is
``UNAUTHENTICATED``, a token of the wrong kind is ``FORBIDDEN``.
"""

from __future__ import annotations

from typing import Any, ClassVar

import strawberry
from strawberry.permission import BasePermission

from auth.principal import Principal, PrincipalKind
from schema import errors


class KindPolicy(BasePermission):
    kinds: ClassVar[frozenset[PrincipalKind]] = frozenset()

    def has_permission(self, source: Any, info: strawberry.Info, **kwargs: Any) -> bool:
        principal: Principal = info.context.principal
        if principal.kind in self.kinds and self.admits(principal):
            return True
        if not principal.authenticated:
            raise errors.unauthenticated()
        raise errors.forbidden()

    def admits(self, principal: Principal) -> bool:
        """Further conditions on an admitted kind (e.g. an officer's agency)."""
        return True
