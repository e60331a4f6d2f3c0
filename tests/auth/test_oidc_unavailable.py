"""An OpenID Connect provider that cannot be reached: the token may be fine,
so the gateway answers 503 with Retry-After, never 401. A key the provider
really does not have (after a successful refetch) stays 401."""

from __future__ import annotations

import contextlib
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from joserfc import jwt
from joserfc.jwk import RSAKey
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from auth.keys import KeyUnavailable
from auth.oidc import OidcKeys
from gateway.app import create_app
from gateway.db.migrate import upgrade_async
from gateway.settings import ROOT, Settings
from tests.support.gateway import free_port, served

K1 = RSAKey.generate_key(2048, {"kid": "k1", "use": "sig", "alg": "RS256"}, private=True)
GHOST = RSAKey.generate_key(2048, {"kid": "ghost"}, private=True)
ME = {"query": "{ me { kind subject } }"}


class Provider:
    """Discovery and JWKS on loopback; ``failing`` makes every answer a 500."""

    def __init__(self) -> None:
        self.failing = False
        self.jwks_requests = 0
        self.app = Starlette(
            routes=[
                Route("/.well-known/openid-configuration", self.discovery),
                Route("/jwks", self.jwks),
            ]
        )

    async def discovery(self, request: Request) -> Response:
        if self.failing:
            return Response("upstream trouble", status_code=500)
        issuer = str(request.base_url).rstrip("/")
        return JSONResponse({"issuer": issuer, "jwks_uri": f"{issuer}/jwks"})

    async def jwks(self, request: Request) -> Response:
        self.jwks_requests += 1
        if self.failing:
            return Response("upstream trouble", status_code=500)
        return JSONResponse({"keys": [K1.as_dict(private=False)]})


def token(issuer: str, key: RSAKey) -> str:
    now = int(time.time())
    claims = {"iss": issuer, "aud": "khaalga", "sub": "reporting-app",
              "client_id": "reporting-app", "iat": now, "exp": now + 300}  # fmt: skip
    return jwt.encode({"alg": "RS256", "typ": "at+jwt", "kid": key.kid}, claims, key)


@contextlib.asynccontextmanager
async def gateway_trusting(issuer: str, tmp_path: Path) -> AsyncIterator[httpx.AsyncClient]:
    settings = Settings(
        var_dir=tmp_path, database_url=f"sqlite+aiosqlite:///{tmp_path / 'k.sqlite'}",
        catalog_dir=ROOT / "catalog", worker=False, oidc_issuer=issuer, oidc_min_refresh=0.0,
    )  # fmt: skip
    await upgrade_async(settings.database_url)
    app = create_app(settings)
    async with (
        app.router.lifespan_context(app),
        httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://k") as http,
    ):
        yield http


async def me(http: httpx.AsyncClient, bearer: str) -> httpx.Response:
    return await http.post("/graphql", json=ME, headers={"Authorization": f"Bearer {bearer}"})


def assert_unavailable(response: httpx.Response) -> None:
    assert response.status_code == 503, response.text
    assert response.headers["content-type"] == "application/problem+json"
    assert int(response.headers["retry-after"]) >= 1
    assert "www-authenticate" not in response.headers  # nothing is wrong with the token
    body: dict[str, Any] = response.json()
    assert body["status"] == 503 and " / " in body["title"] and " / " in body["detail"]


async def test_a_provider_on_a_closed_port_is_503(tmp_path: Path) -> None:
    issuer = f"http://127.0.0.1:{free_port()}"  # nothing listens there
    async with gateway_trusting(issuer, tmp_path) as http:
        for _ in range(2):  # the second is refused at once, inside the backoff
            assert_unavailable(await me(http, token(issuer, K1)))


async def test_a_provider_answering_500_is_503(tmp_path: Path) -> None:
    provider = Provider()
    provider.failing = True
    async with served(provider.app) as issuer, gateway_trusting(issuer, tmp_path) as http:
        assert_unavailable(await me(http, token(issuer, K1)))


async def test_an_unknown_key_is_401_only_when_the_provider_answered(tmp_path: Path) -> None:
    provider = Provider()
    async with served(provider.app) as issuer, gateway_trusting(issuer, tmp_path) as http:
        assert (await me(http, token(issuer, K1))).status_code == 200
        ghost = await me(http, token(issuer, GHOST))
        assert ghost.status_code == 401 and provider.jwks_requests == 2  # refetched, then sure
        assert ghost.headers["www-authenticate"].startswith('Bearer error="invalid_token"')

        provider.failing = True
        assert (await me(http, token(issuer, K1))).status_code == 200  # a key we hold
        assert_unavailable(await me(http, token(issuer, GHOST)))  # maybe a new key: cannot tell

        provider.failing = False
        assert (await me(http, token(issuer, GHOST))).status_code == 401


class Clock:
    now = 1000.0

    def __call__(self) -> float:
        return self.now


async def test_failures_are_retried_after_a_backoff_not_per_request() -> None:
    attempts = 0

    def refuse(request: httpx.Request) -> httpx.Response:
        nonlocal attempts
        attempts += 1
        raise httpx.ConnectError("refused", request=request)

    clock = Clock()
    keys = OidcKeys(
        "https://id.example.mn", failure_backoff=5.0, clock=clock,
        transport=httpx.MockTransport(refuse),
    )  # fmt: skip
    with pytest.raises(KeyUnavailable) as first:
        await keys.key_set("k1")
    assert first.value.retry_after == 5 and attempts == 1
    clock.now += 2
    for _ in range(10):
        with pytest.raises(KeyUnavailable) as waiting:
            await keys.key_set("k1")
    assert waiting.value.retry_after == 3 and attempts == 1
    clock.now += 3
    with pytest.raises(KeyUnavailable):
        await keys.key_set("k1")
    assert attempts == 2
