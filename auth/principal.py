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
class Quota:
    """A registered app's own budgets (developer program), in the ``limits``
    notation, e.g. ``"1200/minute"``; ``None`` falls back to the APP default."""

    requests: str | None = None
    cost: str | None = None


@dataclass(frozen=True, slots=True)
class Principal:
    kind: PrincipalKind
    subject: str | None = None
    agency: str | None = None
    scopes: frozenset[str] = frozenset()
    # A sandbox app's calls never reach a real agency back end.
    sandbox: bool = False
    quota: Quota | None = None

    @property
    def authenticated(self) -> bool:
        return self.kind is not PrincipalKind.ANONYMOUS


ANONYMOUS = Principal(PrincipalKind.ANONYMOUS)
