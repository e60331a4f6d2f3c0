"""The developer program's parts, built from settings once at start-up.

The store (and so app management over GraphQL and the CLI) always exists;
the token endpoint and trust in the gateway's own tokens need a signing
key: ``KHAALGA_ISSUER_KEY_FILE``, or in development a key made under
``var/keys``. A production gateway without one serves no ``/oauth/*`` route
(404) and says so in its log at start-up.
"""

from __future__ import annotations

import datetime as dt
import logging
from collections.abc import Callable
from dataclasses import dataclass, field

from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker
from starlette.routing import BaseRoute, Route

from auth.apps.directory import AppDirectory
from auth.apps.issuer import (
    GatewayIssuer,
    IssuerKeyError,
    check_issuer_url,
    development_key,
    read_signing_key,
)
from auth.apps.rules import supported_scopes
from auth.apps.store import AppStore
from auth.apps.token_endpoint import TokenEndpoint
from auth.dev_issuer import DEV_ISSUER
from auth.tokens import Issuer
from gateway.catalog.loader import Catalog
from gateway.clock import utcnow
from gateway.settings import Settings, SettingsError

log = logging.getLogger("khaalga.apps")


@dataclass(frozen=True)
class DeveloperProgram:
    store: AppStore
    directory: AppDirectory
    issuer: GatewayIssuer | None = None
    routes: list[BaseRoute] = field(default_factory=list)

    @property
    def paths(self) -> tuple[str, ...]:
        """The OAuth routes: they authenticate clients themselves, not by bearer token."""
        return tuple(route.path for route in self.routes if isinstance(route, Route))

    @property
    def issuers(self) -> list[Issuer]:
        """What the token validator trusts on the program's behalf."""
        if self.issuer is None:
            return []
        return [self.issuer.trusted(self.directory.principal)]


def developer_program(
    settings: Settings,
    sessions: async_sessionmaker[AsyncSession],
    catalog: Catalog,
    clock: Callable[[], dt.datetime] = utcnow,
) -> DeveloperProgram:
    store = AppStore(sessions, clock)
    directory = AppDirectory(store, ttl=settings.app_cache_seconds)
    issuer = _issuer(settings)
    if issuer is None:
        return DeveloperProgram(store, directory)
    endpoint = TokenEndpoint(issuer, store, lambda: supported_scopes(catalog))
    return DeveloperProgram(store, directory, issuer, endpoint.routes())


def _issuer(settings: Settings) -> GatewayIssuer | None:
    url = settings.issuer
    if settings.issuer_key_file is None and not settings.development:
        log.warning(
            "developer program: no KHAALGA_ISSUER_KEY_FILE, so the token endpoint "
            "/oauth/token is off and no app can obtain a token"
        )
        return None
    if url is None:
        raise SettingsError("KHAALGA_ISSUER_URL is needed with KHAALGA_ISSUER_KEY_FILE")
    if settings.token_lifetime < 1:
        raise SettingsError("KHAALGA_TOKEN_LIFETIME must be at least 1 second")
    problem = check_issuer_url(url)
    if problem:
        raise SettingsError(f"KHAALGA_ISSUER_URL {problem}")
    if url in (settings.oidc_issuer, DEV_ISSUER):
        raise SettingsError("KHAALGA_ISSUER_URL must differ from every other trusted issuer")
    try:
        key = (
            read_signing_key(settings.issuer_key_file)
            if settings.issuer_key_file is not None
            else development_key(settings.var_dir)
        )
    except IssuerKeyError as exc:
        raise SettingsError(f"KHAALGA_ISSUER_KEY_FILE: {exc}") from exc
    return GatewayIssuer(url, settings.oidc_audience, key, settings.token_lifetime)
