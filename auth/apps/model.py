"""An app of the developer program and its client secrets, as the rest of
the gateway sees them (never the secret itself, never its hash)."""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping
from dataclasses import dataclass, field
from enum import StrEnum

from auth.principal import Principal, PrincipalKind, Quota


class AppStatus(StrEnum):
    PENDING = "PENDING"  # self-service registration, waiting for an operator
    ACTIVE = "ACTIVE"
    SUSPENDED = "SUSPENDED"  # an operator stopped it for now; approval restores it
    REVOKED = "REVOKED"  # for good, with every secret


class AppEnvironment(StrEnum):
    SANDBOX = "SANDBOX"  # never reaches a real agency back end
    PRODUCTION = "PRODUCTION"


class AppNotFound(LookupError):
    """No such app (or secret of it); the caller may not learn which."""


class WrongStatus(Exception):
    """The app's status does not allow the change."""

    def __init__(self, status: AppStatus) -> None:
        super().__init__(status.value)
        self.status = status


@dataclass(frozen=True, slots=True)
class AppSecret:
    id: str
    prefix: str  # the first characters, to tell secrets apart; not enough to guess one
    created_at: dt.datetime
    expires_at: dt.datetime | None = None
    revoked_at: dt.datetime | None = None

    def usable(self, now: dt.datetime) -> bool:
        return self.revoked_at is None and (self.expires_at is None or now < self.expires_at)


@dataclass(frozen=True, slots=True)
class App:
    client_id: str
    name: str
    description: str
    purpose: str | None
    environment: AppEnvironment
    status: AppStatus
    scopes: frozenset[str]
    quota: Quota
    owner_kind: PrincipalKind
    owner: str
    created_at: dt.datetime
    approved_at: dt.datetime | None
    secrets: tuple[AppSecret, ...] = ()

    @property
    def sandbox(self) -> bool:
        return self.environment is AppEnvironment.SANDBOX

    def secret(self, secret_id: object) -> AppSecret | None:
        return next((s for s in self.secrets if s.id == secret_id), None)

    def owned_by(self, principal: Principal) -> bool:
        return principal.kind is self.owner_kind and principal.subject == self.owner


@dataclass(frozen=True, slots=True)
class Credentials:
    """An app with its secrets' hashes, for the token endpoint alone."""

    app: App
    hashes: Mapping[str, str] = field(repr=False)  # secret id -> SHA-256 hex


@dataclass(frozen=True, slots=True)
class IssuedSecret:
    """A new secret in clear: handed to whoever registered or rotated, once."""

    id: str
    value: str = field(repr=False)  # so no repr() or traceback prints it
