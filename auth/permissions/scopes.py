"""What an APP may do is what its token's scopes grant.

A citizen acts on their own data. An app (a client-credentials token) acts
for citizens only as far as its OAuth scopes say:

    service:<CODE>       call that service: a LOOKUP, or with
                         ``applications:write`` file that APPLICATION
    applications:write   file applications (with the service's own scope)
    applications:read    read and follow the applications it filed itself

The kind is checked first, as everywhere (``base.KindPolicy``); then an app
missing a scope is refused with FORBIDDEN naming every scope it lacks, so a
developer knows what to ask for. The scope is checked against the service
code before the service is looked up: an app learns nothing it may not use.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import strawberry

from auth.permissions.base import KindPolicy
from auth.principal import Principal, PrincipalKind
from schema import errors

READ_APPLICATIONS = "applications:read"
WRITE_APPLICATIONS = "applications:write"


def service_scope(code: str) -> str:
    return f"service:{code}"


def service_scopes(code: str, *, filing: bool) -> list[str]:
    """What an app needs to call service ``code`` (``filing``: an APPLICATION)."""
    return [WRITE_APPLICATIONS, service_scope(code)] if filing else [service_scope(code)]


def missing_scopes(principal: Principal, needed: list[str]) -> list[str]:
    """The scopes of ``needed`` an app's token lacks; none for anyone else."""
    if principal.kind is not PrincipalKind.APP:
        return []
    return [scope for scope in needed if scope not in principal.scopes]


class ScopedPolicy(KindPolicy):
    def has_permission(self, source: Any, info: strawberry.Info, **kwargs: Any) -> bool:
        super().has_permission(source, info, **kwargs)  # the kind; raises when it does not fit
        missing = missing_scopes(info.context.principal, self.app_scopes(kwargs))
        if missing:
            raise errors.missing_scopes(missing)
        return True

    def app_scopes(self, arguments: Mapping[str, Any]) -> list[str]:
        """The scopes an app needs for this call (``arguments``: the field's)."""
        return []


class ServiceCaller(ScopedPolicy):
    """A service's LOOKUP: the citizen, or an app holding ``service:<CODE>``.

    A generated field is bound to its service; the generic field reads the
    code from its ``serviceCode`` argument."""

    kinds = frozenset({PrincipalKind.CITIZEN, PrincipalKind.APP})
    filing = False

    def __init__(self, service_code: str | None = None) -> None:
        self.service_code = service_code

    def admits(self, principal: Principal) -> bool:
        return bool(principal.subject)

    def app_scopes(self, arguments: Mapping[str, Any]) -> list[str]:
        code = self.service_code or str(arguments.get("service_code", ""))
        return service_scopes(code, filing=self.filing)


class ServiceApplicant(ServiceCaller):
    """Filing an APPLICATION: the citizen, or an app holding both
    ``applications:write`` and ``service:<CODE>``."""

    filing = True
