"""Reading one application by id: its citizen, an officer of its agency, an
operator. The store scopes the row to the caller; an app has no citizen's
consent here and is refused outright."""

from __future__ import annotations

from auth.permissions.base import KindPolicy
from auth.principal import PrincipalKind


class ApplicationReader(KindPolicy):
    kinds = frozenset({PrincipalKind.CITIZEN, PrincipalKind.OFFICER, PrincipalKind.OPERATOR})
