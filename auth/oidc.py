"""An OpenID Connect provider's signing keys, discovered and cached.

``<issuer>/.well-known/openid-configuration`` names the ``jwks_uri``; the
key set is cached and fetched again when a token names a key we do not
hold (the provider rotated), at most once per ``min_refresh`` seconds so a
stream of tokens with made-up ``kid`` values cannot make us hammer the
provider. A fetch also happens after ``max_age`` to drop retired keys.

When the provider cannot be reached (refused, timed out, 5xx, nonsense),
tokens signed with a key we already hold keep working; any other token
raises ``KeyUnavailable`` (503 to the client: the token may be fine) rather
than being called invalid. Without any keys, a failed fetch is retried at
most once per ``failure_backoff`` seconds and requests in between fail at
once, so an outage neither queues requests behind one timeout after another
nor floods the provider as it comes back.
"""

from __future__ import annotations

import asyncio
import math
import time
from collections.abc import Callable
from typing import Any
from urllib.parse import urlsplit

import httpx
from joserfc.errors import JoseError
from joserfc.jwk import KeySet

from auth.keys import KeyUnavailable

LOOPBACK = frozenset({"127.0.0.1", "localhost", "::1"})
PUBLIC_KTY = frozenset({"RSA", "EC", "OKP"})


def _checked_url(url: object) -> str:
    # Keys fetched over plain HTTP could be swapped in transit; only the
    # loopback test provider may use it.
    parts = urlsplit(str(url))
    if parts.scheme == "https" or (parts.scheme == "http" and parts.hostname in LOOPBACK):
        return str(url)
    raise KeyUnavailable("the issuer's key URL must use https")


class OidcKeys:
    def __init__(
        self,
        issuer: str,
        *,
        min_refresh: float = 30.0,
        max_age: float = 3600.0,
        failure_backoff: float = 5.0,
        timeout: float = 5.0,
        transport: httpx.AsyncBaseTransport | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.issuer = issuer
        self.min_refresh = min_refresh
        self.max_age = max_age
        self.failure_backoff = failure_backoff
        self.timeout = timeout
        self.transport = transport
        self.clock = clock
        self.fetches = 0
        self._keys: KeySet | None = None
        self._fetched_at = float("-inf")
        self._failure: KeyUnavailable | None = None  # the last fetch's, until one succeeds
        self._lock = asyncio.Lock()

    async def key_set(self, kid: str | None) -> KeySet:
        if self._needs_fetch(kid):
            async with self._lock:
                if self._needs_fetch(kid):  # another request may have just fetched
                    await self._fetch()
        if self._failure is not None and (self._keys is None or self._unknown(kid)):
            wait = (self.failure_backoff if self._keys is None else self.min_refresh) - self._age()
            raise KeyUnavailable(str(self._failure), max(1, math.ceil(wait))) from self._failure
        assert self._keys is not None  # a fetch either succeeded or left a failure
        return self._keys

    def _age(self) -> float:
        return self.clock() - self._fetched_at

    def _unknown(self, kid: str | None) -> bool:
        return kid is not None and (self._keys is None or kid not in {k.kid for k in self._keys})

    def _needs_fetch(self, kid: str | None) -> bool:
        age = self._age()
        if self._keys is None:
            return age >= self.failure_backoff  # never fetched: age is infinite
        if age >= self.max_age:
            return True
        return self._unknown(kid) and age >= self.min_refresh

    async def _fetch(self) -> None:
        # Counted as fetched even when it fails, so failures are rate-limited too.
        self._fetched_at = self.clock()
        self.fetches += 1
        try:
            self._keys = await self._download()
        except KeyUnavailable as exc:
            self._failure = exc  # the keys we hold (if any) stay in service
        else:
            self._failure = None

    async def _download(self) -> KeySet:
        """The provider's signing keys; every failure is a ``KeyUnavailable``."""
        try:
            async with httpx.AsyncClient(timeout=self.timeout, transport=self.transport) as http:
                discovery = await _json(
                    http, self.issuer.rstrip("/") + "/.well-known/openid-configuration"
                )
                if discovery.get("issuer") != self.issuer:
                    raise KeyUnavailable("the issuer's discovery document names another issuer")
                jwks = await _json(http, _checked_url(discovery.get("jwks_uri")))
        except httpx.HTTPError as exc:
            raise KeyUnavailable("the issuer's keys cannot be fetched") from exc
        keys = [
            k for k in jwks.get("keys", [])
            if isinstance(k, dict) and k.get("kty") in PUBLIC_KTY and k.get("use") != "enc"
            and "d" not in k  # a private key in a public set is a provider misconfiguration
        ]  # fmt: skip
        try:
            return KeySet.import_key_set({"keys": keys})
        except (JoseError, ValueError, TypeError) as exc:
            raise KeyUnavailable("the issuer's key set cannot be read") from exc


async def _json(http: httpx.AsyncClient, url: str) -> dict[str, Any]:
    response = await http.get(_checked_url(url))
    response.raise_for_status()
    try:
        body = response.json()
    except ValueError as exc:
        raise KeyUnavailable("the issuer answered something other than JSON") from exc
    if not isinstance(body, dict):
        raise KeyUnavailable("the issuer answered something other than a JSON object")
    return body
