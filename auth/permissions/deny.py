"""Nobody: what a root field gets when it declares no policy."""

from __future__ import annotations

from auth.permissions.base import KindPolicy


class DenyAll(KindPolicy):
    kinds = frozenset()
