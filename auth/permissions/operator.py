"""A gateway operator: dead letters, chain verification."""

from __future__ import annotations

from auth.permissions.base import KindPolicy
from auth.principal import PrincipalKind


class OperatorOnly(KindPolicy):
    kinds = frozenset({PrincipalKind.OPERATOR})
