"""Anyone, token or not: the public catalog and ``me``."""

from __future__ import annotations

from auth.permissions.base import KindPolicy
from auth.principal import PrincipalKind


class Public(KindPolicy):
    kinds = frozenset(PrincipalKind)
