"""Who is calling: the principal every resolver checks."""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum


class PrincipalKind(StrEnum):
    CITIZEN = "CITIZEN"
    OFFICER = "OFFICER"
    APP = "APP"
    OPERATOR = "OPERATOR"
    ANONYMOUS = "ANONYMOUS"


@dataclass(frozen=True, slots=True)
class Principal:
    kind: PrincipalKind
    subject: str | None = None
    agency: str | None = None
    scopes: frozenset[str] = frozenset()

    @property
    def authenticated(self) -> bool:
        return self.kind is not PrincipalKind.ANONYMOUS


ANONYMOUS = Principal(PrincipalKind.ANONYMOUS)
