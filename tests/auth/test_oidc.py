"""The gateway as an OAuth 2.0 resource server, against a real provider: the
npm package oidc-provider, run on loopback by ``oidc_provider.mjs``, issuing
client-credentials JWT access tokens (RFC 9068)."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import subprocess
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from joserfc import jwt
from joserfc.jwk import RSAKey

from auth.issuers import token_validator
from auth.principal import PrincipalKind
from auth.tokens import InvalidToken, TokenValidator
from gateway.app import create_app
from gateway.settings import ROOT, Settings
from tests.conftest import unavailable
from tests.support.gateway import free_port

SCRIPT = Path(__file__).with_name("oidc_provider.mjs")
CLIENT, SECRET = "reporting-app", "made-up-test-secret"
AUDIENCE = "urn:khaalga:gateway"  # a resource indicator must be an absolute URI


def rsa(kid: str) -> RSAKey:
    return RSAKey.generate_key(2048, {"kid": kid, "use": "sig", "alg": "RS256"}, private=True)


K1, K2, GHOST = rsa("k1"), rsa("k2"), rsa("ghost")


class Provider:
    def __init__(self, port: int) -> None:
        self.port = port
        self.issuer = f"http://127.0.0.1:{port}"
        self.process: subprocess.Popen[str] | None = None

    def start(self, *keys: RSAKey) -> None:
        config = {
            "port": self.port, "issuer": self.issuer, "audience": AUDIENCE,
            "keys": [k.as_dict(private=True) for k in keys],
            "clients": [{"client_id": CLIENT, "client_secret": SECRET}],
        }  # fmt: skip
        self.process = subprocess.Popen(
            ["node", str(SCRIPT), json.dumps(config)], cwd=ROOT, text=True,
            stdout=subprocess.PIPE, stderr=subprocess.PIPE,
        )  # fmt: skip
        assert self.process.stdout is not None
        line = self.process.stdout.readline()
        if line.strip() != "ready":
            self.stop()
            pytest.fail(f"oidc-provider did not start: {line}")

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            self.process.wait(timeout=10)
        if self.process is not None:
            for stream in (self.process.stdout, self.process.stderr):
                if stream is not None:
                    stream.close()
        self.process = None

    async def token(self, resource: str | None = None) -> str:
        data = {"grant_type": "client_credentials", "scope": "catalog:read"}
        if resource:
            data["resource"] = resource
        async with httpx.AsyncClient() as http:
            response = await http.post(f"{self.issuer}/token", data=data, auth=(CLIENT, SECRET))
        assert response.status_code == 200, response.text
        token: str = response.json()["access_token"]
        return token


@pytest.fixture
def provider() -> Iterator[Provider]:
    if not (ROOT / "node_modules" / "oidc-provider").is_dir():
        unavailable("npm package oidc-provider (run `npm ci`)", FileNotFoundError("node_modules"))
    running = Provider(free_port())
    running.start(K1)
    try:
        yield running
    finally:
        running.stop()


def validator_for(provider: Provider, tmp_path: Path, env: str = "production") -> TokenValidator:
    settings = Settings(
        env=env, var_dir=tmp_path, oidc_issuer=provider.issuer,  # type: ignore[arg-type]
        oidc_audience=AUDIENCE, oidc_min_refresh=0.0,
    )  # fmt: skip
    return token_validator(settings)


def claims_of(token: str) -> dict[str, Any]:
    payload = token.split(".")[1]
    decoded: dict[str, Any] = json.loads(
        base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4))
    )
    return decoded


def b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def resign(token: str, key: RSAKey, **changes: Any) -> str:
    """The provider's own claims, changed, signed with ``key``."""
    claims = {**claims_of(token), **changes}
    return jwt.encode({"alg": "RS256", "typ": "at+jwt", "kid": key.kid}, claims, key)


def unsigned(token: str, header: dict[str, Any], sign: Callable[[bytes], bytes]) -> str:
    signing_input = f"{b64(json.dumps(header).encode())}.{token.split('.')[1]}".encode()
    return f"{signing_input.decode()}.{b64(sign(signing_input))}"


async def test_a_client_credentials_token_is_an_app(provider: Provider, tmp_path: Path) -> None:
    token = await provider.token()
    header = json.loads(base64.urlsafe_b64decode(token.split(".")[0] + "=="))
    assert header["typ"] == "at+jwt" and header["kid"] == "k1"
    principal = await validator_for(provider, tmp_path).principal(token)
    assert principal.kind is PrincipalKind.APP and principal.subject == CLIENT
    assert principal.scopes == frozenset({"catalog:read"})


async def test_bad_tokens_are_refused(provider: Provider, tmp_path: Path) -> None:
    validator = validator_for(provider, tmp_path)
    good = await provider.token()
    now = int(time.time())
    public_pem = K1.as_pem(private=False)
    head, _, signature = good.split(".")
    flipped = claims_of(good) | {"scope": "catalog:read applications:write"}
    bad = {
        "wrong audience": await provider.token(resource="https://other.example"),
        "wrong issuer": resign(good, K1, iss="https://evil.example"),
        "expired": resign(good, K1, iat=now - 600, exp=now - 300),
        "not yet valid": resign(good, K1, nbf=now + 600),
        "tampered": f"{head}.{b64(json.dumps(flipped).encode())}.{signature}",
        "unknown kid": resign(good, GHOST),
        "alg none": unsigned(good, {"alg": "none", "typ": "at+jwt"}, lambda _: b""),
        "HS256 with the public key": unsigned(
            good, {"alg": "HS256", "typ": "at+jwt", "kid": "k1"},
            lambda data: hmac.new(public_pem, data, hashlib.sha256).digest(),
        ),
        "not an access token": jwt.encode({"alg": "RS256", "kid": "k1"}, claims_of(good), K1),
    }  # fmt: skip
    for name, token in bad.items():
        with pytest.raises(InvalidToken):
            await validator.principal(token)
            pytest.fail(name)
    assert (await validator.principal(resign(good, K1, exp=now - 10))).subject == CLIENT  # leeway


async def test_key_rotation_is_followed(provider: Provider, tmp_path: Path) -> None:
    validator = validator_for(provider, tmp_path)
    assert (await validator.principal(await provider.token())).subject == CLIENT
    provider.stop()
    provider.start(K2, K1)  # the provider rotates: k2 signs from now on, k1 still published
    rotated = await provider.token()
    assert json.loads(base64.urlsafe_b64decode(rotated.split(".")[0] + "=="))["kid"] == "k2"
    assert (await validator.principal(rotated)).subject == CLIENT


async def test_the_gateway_answers_401_and_serves_apps(provider: Provider, tmp_path: Path) -> None:
    settings = Settings(
        var_dir=tmp_path, database_url=f"sqlite+aiosqlite:///{tmp_path / 'k.sqlite'}",
        catalog_dir=ROOT / "catalog", worker=False, oidc_issuer=provider.issuer,
        oidc_audience=AUDIENCE,
    )  # fmt: skip
    from gateway.db.migrate import upgrade_async

    await upgrade_async(settings.database_url)
    app = create_app(settings)
    token = await provider.token()
    async with (
        app.router.lifespan_context(app),
        httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://k") as http,
    ):
        me = await post(http, "{ me { kind subject scopes } }", token)
        assert me.json()["data"]["me"] == {"kind": "APP", "subject": CLIENT,
                                           "scopes": ["catalog:read"]}  # fmt: skip
        refused = await post(http, "{ me { kind } }", resign(token, GHOST))
        assert refused.status_code == 401
        assert refused.headers["www-authenticate"].startswith('Bearer error="invalid_token"')
        assert refused.headers["content-type"] == "application/problem+json"


async def post(http: httpx.AsyncClient, query: str, token: str) -> httpx.Response:
    return await http.post(
        "/graphql", json={"query": query}, headers={"Authorization": f"Bearer {token}"}
    )


async def test_the_dev_issuer_is_not_trusted_in_production(
    provider: Provider, tmp_path: Path
) -> None:
    from tests.support.gateway import citizen_token

    settings = Settings(var_dir=tmp_path)
    dev_token = citizen_token(settings, "УБ99010112")
    assert (await validator_for(provider, tmp_path, "development").principal(dev_token)).subject
    with pytest.raises(InvalidToken, match="issuer is not trusted"):
        await validator_for(provider, tmp_path, "production").principal(dev_token)
