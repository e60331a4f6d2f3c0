"""The provider's key set is cached; an unknown ``kid`` refetches it, at
most once per ``min_refresh`` seconds."""

from __future__ import annotations

import httpx
import pytest
from joserfc.jwk import RSAKey

from auth.keys import KeyUnavailable
from auth.oidc import OidcKeys

ISSUER = "https://id.example.mn"


class FakeProvider:
    def __init__(self) -> None:
        self.keys = [RSAKey.generate_key(2048, {"kid": "k1"}, private=True)]
        self.jwks_requests = 0
        self.issuer = ISSUER

    def handle(self, request: httpx.Request) -> httpx.Response:
        if request.url.path == "/.well-known/openid-configuration":
            return httpx.Response(200, json={"issuer": self.issuer, "jwks_uri": f"{ISSUER}/jwks"})
        self.jwks_requests += 1
        return httpx.Response(200, json={"keys": [k.as_dict(private=False) for k in self.keys]})


class Clock:
    now = 1000.0

    def __call__(self) -> float:
        return self.now


def keys_for(provider: FakeProvider, clock: Clock) -> OidcKeys:
    return OidcKeys(
        ISSUER, min_refresh=30, max_age=3600, clock=clock,
        transport=httpx.MockTransport(provider.handle),
    )  # fmt: skip


async def test_unknown_kids_refetch_at_most_once_per_interval() -> None:
    provider, clock = FakeProvider(), Clock()
    keys = keys_for(provider, clock)
    assert {k.kid for k in await keys.key_set("k1")} == {"k1"}
    for _ in range(20):  # a flood of made-up kids inside the interval: no refetch
        await keys.key_set("made-up")
    assert provider.jwks_requests == 1
    provider.keys.append(RSAKey.generate_key(2048, {"kid": "k2"}, private=True))
    clock.now += 31
    assert "k2" in {k.kid for k in await keys.key_set("k2")}
    assert provider.jwks_requests == 2
    await keys.key_set("k1")  # known: served from the cache
    assert provider.jwks_requests == 2


async def test_keys_are_refreshed_after_max_age() -> None:
    provider, clock = FakeProvider(), Clock()
    keys = keys_for(provider, clock)
    await keys.key_set("k1")
    clock.now += 3601
    await keys.key_set("k1")
    assert provider.jwks_requests == 2


async def test_a_discovery_document_for_another_issuer_is_refused() -> None:
    provider, clock = FakeProvider(), Clock()
    provider.issuer = "https://evil.example"
    with pytest.raises(KeyUnavailable, match="another issuer"):
        await keys_for(provider, clock).key_set("k1")


async def test_plain_http_key_urls_are_refused_off_loopback() -> None:
    keys = OidcKeys("http://id.example.mn", transport=httpx.MockTransport(FakeProvider().handle))
    with pytest.raises(KeyUnavailable, match="https"):
        await keys.key_set("k1")
