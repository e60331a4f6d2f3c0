"""An OpenID Connect provider's signing keys, discovered and cached.

``<issuer>/.well-known/openid-configuration`` names the ``jwks_uri``; the
key set is cached and fetched again when a token names a key we do not
hold (the provider rotated), at most once per ``min_refresh`` seconds so a
stream of tokens with made-up ``kid`` values cannot make us hammer the
provider. A fetch also happens after ``max_age`` to drop retired keys.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from typing import Any
from urllib.parse import urlsplit

import httpx
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
        timeout: float = 5.0,
        transport: httpx.AsyncBaseTransport | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.issuer = issuer
        self.min_refresh = min_refresh
        self.max_age = max_age
        self.timeout = timeout
        self.transport = transport
        self.clock = clock
        self.fetches = 0
        self._keys: KeySet | None = None
        self._fetched_at = float("-inf")
        self._lock = asyncio.Lock()

    async def key_set(self, kid: str | None) -> KeySet:
        if self._needs_fetch(kid):
            async with self._lock:
                if self._needs_fetch(kid):  # another request may have just fetched
                    await self._fetch()
        assert self._keys is not None
        return self._keys

    def _needs_fetch(self, kid: str | None) -> bool:
        age = self.clock() - self._fetched_at
        if self._keys is None or age >= self.max_age:
            return True
        unknown = kid is not None and kid not in {k.kid for k in self._keys}
        return unknown and age >= self.min_refresh

    async def _fetch(self) -> None:
        # Counted as fetched even when it fails, so failures are rate-limited too.
        self._fetched_at = self.clock()
        self.fetches += 1
        try:
            async with httpx.AsyncClient(timeout=self.timeout, transport=self.transport) as http:
                discovery = await _json(
                    http, self.issuer.rstrip("/") + "/.well-known/openid-configuration"
                )
                if discovery.get("issuer") != self.issuer:
                    raise KeyUnavailable("the issuer's discovery document names another issuer")
                jwks = await _json(http, _checked_url(discovery.get("jwks_uri")))
        except httpx.HTTPError as exc:
            if self._keys is not None:
                return  # keep serving the keys we have
            raise KeyUnavailable("the issuer's keys cannot be fetched") from exc
        keys = [
            k for k in jwks.get("keys", [])
            if isinstance(k, dict) and k.get("kty") in PUBLIC_KTY and k.get("use") != "enc"
            and "d" not in k  # a private key in a public set is a provider misconfiguration
        ]  # fmt: skip
        self._keys = KeySet.import_key_set({"keys": keys})


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
