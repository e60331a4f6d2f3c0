"""The gateway's own tokens -> principals, through a short-lived cache of apps.

A JWT stays valid until it expires, so a token alone cannot be revoked. Every
token of the gateway's own issuer is therefore checked against the app's
current record: the app must be ACTIVE and the secret the token was minted
with neither revoked nor past its grace. Records are cached for a few
seconds (``KHAALGA_APP_CACHE_SECONDS``) so the check costs no database round
trip per request, while a revocation or suspension in any process takes
effect everywhere within that time (at once in the process that made it).
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping
from typing import Any

from cachetools import TTLCache
from sqlalchemy.exc import DBAPIError

from auth.apps.issuer import ENV_CLAIM, SECRET_CLAIM
from auth.apps.model import App, AppStatus
from auth.apps.store import AppStore
from auth.principal import Principal, PrincipalKind
from auth.tokens import InvalidToken, IssuerUnavailable

MAX_CACHED = 10_000
DATABASE_RETRY = 5.0  # seconds a client is told to wait when the database does not answer


class AppDirectory:
    def __init__(
        self,
        store: AppStore,
        *,
        ttl: float = 5.0,
        timer: Callable[[], float] = time.monotonic,
    ) -> None:
        self.store = store  # its clock decides whether a secret is still usable
        # ttl 0: no cache at all (TTLCache would still serve an entry within
        # the same timer tick).
        self._cache: TTLCache[str, App | None] | None = (
            TTLCache(MAX_CACHED, ttl, timer) if ttl > 0 else None
        )
        store.on_change(self.invalidate)

    def invalidate(self, client_id: str) -> None:
        if self._cache is not None:
            self._cache.pop(client_id, None)

    async def app(self, client_id: str) -> App | None:
        if self._cache is not None and client_id in self._cache:
            return self._cache[client_id]
        try:
            app = await self.store.get(client_id)
        except (DBAPIError, OSError) as exc:
            # The token may be perfectly good; the gateway cannot tell now.
            raise IssuerUnavailable("the app directory cannot be read", DATABASE_RETRY) from exc
        if self._cache is not None:
            self._cache[client_id] = app
        return app

    async def principal(self, claims: Mapping[str, Any]) -> Principal:
        """Verified claims of the gateway's own issuer -> the app's principal."""
        client_id = claims.get("client_id")
        if not isinstance(client_id, str) or client_id != claims.get("sub"):
            raise InvalidToken("token is not a client-credentials token")
        app = await self.app(client_id)
        if app is None or app.status is not AppStatus.ACTIVE:
            raise InvalidToken("the app is not active")
        secret = app.secret(claims.get(SECRET_CLAIM))
        if secret is None or not secret.usable(self.store.clock()):
            raise InvalidToken("the secret this token was issued for is revoked or expired")
        if claims.get(ENV_CLAIM) != app.environment.value.lower():
            raise InvalidToken("token environment does not match the app")
        # An operator may have narrowed the app's scopes since the token was issued.
        granted = frozenset(str(claims.get("scope") or "").split()) & app.scopes
        return Principal(
            PrincipalKind.APP, client_id, None, granted, sandbox=app.sandbox, quota=app.quota
        )
