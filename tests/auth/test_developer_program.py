"""The developer program end to end, through the real ASGI app on SQLite and
PostgreSQL: registration, the gateway's own token endpoint, its tokens as APP
principals, rotation, revocation and suspension."""

from __future__ import annotations

import base64
import datetime as dt
import hashlib
import json
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
from joserfc import jwt
from joserfc.jwk import RSAKey
from sqlalchemy import select

from auth.apps.directory import AppDirectory
from auth.apps.store import AppStore
from auth.principal import Quota
from gateway.app import create_app
from gateway.clock import utcnow
from gateway.db.tables import DeveloperApp, DeveloperAppSecret
from gateway.settings import ROOT, Settings
from tests.auth.conftest import NO_RATE_LIMITS, Gateway
from tests.support.gateway import Api

REGISTER = """mutation($input: RegisterAppInput!) { registerApp(input: $input) {
  clientSecret secretId app { clientId status environment scopes
  secrets { id prefix expiresAt revokedAt } } } }"""
ME = "{ me { kind subject scopes sandbox } }"
APPROVE = "mutation($id: ID!) { approveApp(clientId: $id) { status approvedAt } }"
SUSPEND = "mutation($id: ID!) { suspendApp(clientId: $id) { status } }"
REVOKE = "mutation($id: ID!) { revokeApp(clientId: $id) { status secrets { revokedAt } } }"
ROTATE = """mutation($id: ID!, $grace: Int!) {
  rotateAppSecret(clientId: $id, graceSeconds: $grace) {
    clientSecret secretId app { secrets { id expiresAt revokedAt } } } }"""
REVOKE_SECRET = """mutation($id: ID!, $secret: ID!) {
  revokeAppSecret(clientId: $id, secretId: $secret) { secrets { id revokedAt } } }"""
QUOTA = """mutation($id: ID!, $requests: String, $cost: String) {
  setAppQuota(clientId: $id, requests: $requests, cost: $cost) { quota { requests cost } } }"""
MY_APPS = "{ myApps { totalCount edges { node { clientId status } } } }"
APPS = """query($status: AppStatus, $first: Int!, $after: String) {
  apps(status: $status, first: $first, after: $after) {
  totalCount edges { cursor node { clientId status } } pageInfo { hasNextPage endCursor } } }"""


class Clock:
    """The app store's clock; JWT ``iat``/``exp`` still follow real time."""

    def __init__(self) -> None:
        self.now = utcnow()

    def __call__(self) -> dt.datetime:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += dt.timedelta(seconds=seconds)


@dataclass
class Program:
    gateway: Gateway
    clock: Clock

    @property
    def http(self) -> httpx.AsyncClient:
        return self.gateway.http

    async def register(self, api: Api, **fields: Any) -> dict[str, Any]:
        wanted = {"name": "Ulaanbaatar Parking", "description": "Finds parking",
                  "environment": "PRODUCTION", "scopes": ["catalog:read"], **fields}  # fmt: skip
        registered: dict[str, Any] = (await api.data(REGISTER, {"input": wanted}))["registerApp"]
        return registered

    async def token(
        self, client_id: str, secret: str, *, post: bool = False, scope: str | None = None
    ) -> httpx.Response:
        form = {"grant_type": "client_credentials"}
        if scope is not None:
            form["scope"] = scope
        if post:
            form |= {"client_id": client_id, "client_secret": secret}
            return await self.http.post("/oauth/token", data=form)
        return await self.http.post("/oauth/token", data=form, auth=(client_id, secret))

    async def access_token(self, client_id: str, secret: str, **kwargs: Any) -> str:
        response = await self.token(client_id, secret, **kwargs)
        assert response.status_code == 200, response.text
        token: str = response.json()["access_token"]
        return token

    async def me(self, token: str) -> httpx.Response:
        return await Api(self.http, token).post(ME)


@pytest.fixture
async def program(database_url: str, tmp_path: Path) -> AsyncIterator[Program]:
    settings = Settings(
        var_dir=tmp_path, database_url=database_url, catalog_dir=ROOT / "catalog",
        worker=False, rate_limits=NO_RATE_LIMITS, app_cache_seconds=0,
    )  # fmt: skip
    app = create_app(settings)
    clock = Clock()
    app.state.services.apps.clock = clock
    transport = httpx.ASGITransport(app=app)
    async with (
        app.router.lifespan_context(app),
        httpx.AsyncClient(transport=transport, base_url="http://khaalga.test") as http,
    ):
        yield Program(Gateway(http, app, settings), clock)


def claims_of(token: str) -> dict[str, Any]:
    part = token.split(".")[1]
    claims: dict[str, Any] = json.loads(base64.urlsafe_b64decode(part + "=" * (-len(part) % 4)))
    return claims


def header_of(token: str) -> dict[str, Any]:
    part = token.split(".")[0]
    header: dict[str, Any] = json.loads(base64.urlsafe_b64decode(part + "=" * (-len(part) % 4)))
    return header


def oauth_error(response: httpx.Response) -> str:
    assert response.headers["cache-control"] == "no-store"
    assert response.headers["content-type"] == "application/json"
    body = response.json()
    assert body["error_description"] and body["error_description_mn"]
    error: str = body["error"]
    return error


async def test_an_operator_registers_an_app_that_obtains_tokens(program: Program) -> None:
    registered = await program.register(program.gateway.operator())
    app, secret = registered["app"], registered["clientSecret"]
    assert app["status"] == "ACTIVE" and app["environment"] == "PRODUCTION"
    assert secret.startswith("khs_") and len(secret) > 40
    assert app["secrets"] == [{"id": registered["secretId"], "prefix": secret[:8],
                               "expiresAt": None, "revokedAt": None}]  # fmt: skip
    client_id = app["clientId"]

    for post in (False, True):
        response = await program.token(client_id, secret, post=post)
        assert response.status_code == 200, response.text
        assert response.headers["cache-control"] == "no-store"
        body = response.json()
        assert body["token_type"] == "Bearer" and body["expires_in"] == 900
        assert body["scope"] == "catalog:read"
        token = body["access_token"]
        header, claims = header_of(token), claims_of(token)
        assert header["typ"] == "at+jwt" and header["alg"] == "RS256" and header["kid"]
        assert claims["iss"] == "http://127.0.0.1:8000" and claims["aud"] == "khaalga"
        assert claims["sub"] == claims["client_id"] == client_id
        assert claims["exp"] - claims["iat"] == 900 and claims["jti"]
        assert claims["khaalga_env"] == "production"
        assert claims["khaalga_secret_id"] == registered["secretId"]
        me = await program.me(token)
        expected = {"kind": "APP", "subject": client_id, "scopes": ["catalog:read"]}
        assert me.json()["data"]["me"] == {**expected, "sandbox": False}

    metadata = (await program.http.get("/.well-known/oauth-authorization-server")).json()
    assert metadata["token_endpoint"] == "http://127.0.0.1:8000/oauth/token"
    assert metadata["grant_types_supported"] == ["client_credentials"]
    assert "service:LAND-001" in metadata["scopes_supported"]
    jwks = (await program.http.get("/oauth/jwks")).json()
    assert [k["kid"] for k in jwks["keys"]] == [header["kid"]]
    assert "d" not in jwks["keys"][0]  # the public half only


async def test_client_authentication_failures_are_invalid_client(program: Program) -> None:
    registered = await program.register(program.gateway.operator())
    client_id = registered["app"]["clientId"]
    attempts = [
        await program.token(client_id, "khs_wrong"),
        await program.token(client_id, "khs_wrong", post=True),
        await program.token("app_" + "0" * 20, registered["clientSecret"]),
        await program.token("app\x00; drop", registered["clientSecret"], post=True),
        await program.http.post("/oauth/token", data={"grant_type": "client_credentials"}),
    ]
    for response in attempts:
        assert response.status_code == 401, response.text
        assert oauth_error(response) == "invalid_client"
        assert response.headers["www-authenticate"].startswith('Basic error="invalid_client"')
    # An unknown client and a wrong secret read alike, so ids cannot be probed.
    assert attempts[0].json() == attempts[2].json()


async def test_malformed_token_requests(program: Program) -> None:
    registered = await program.register(program.gateway.operator())
    client_id, secret = registered["app"]["clientId"], registered["clientSecret"]
    password = await program.http.post(
        "/oauth/token", data={"grant_type": "password"}, auth=(client_id, secret)
    )
    assert password.status_code == 400 and oauth_error(password) == "unsupported_grant_type"
    both = await program.http.post(
        "/oauth/token", auth=(client_id, secret),
        data={"grant_type": "client_credentials", "client_secret": secret},
    )  # fmt: skip
    assert both.status_code == 400 and oauth_error(both) == "invalid_request"
    as_json = await program.http.post(
        "/oauth/token", json={"grant_type": "client_credentials"}, auth=(client_id, secret)
    )
    assert as_json.status_code == 400 and oauth_error(as_json) == "invalid_request"
    assert (await program.http.get("/oauth/token")).status_code == 405


async def test_a_self_service_app_waits_for_an_operator(program: Program) -> None:
    developer, operator = program.gateway.citizen(0), program.gateway.operator()
    registered = await program.register(developer, environment="SANDBOX", purpose="testing")
    client_id, secret = registered["app"]["clientId"], registered["clientSecret"]
    assert registered["app"]["status"] == "PENDING" and client_id.startswith("sbx_")

    refused = await program.token(client_id, secret)
    assert refused.status_code == 400 and oauth_error(refused) == "unauthorized_client"
    assert "pending" in refused.json()["error_description"]
    mine = (await developer.data(MY_APPS))["myApps"]
    assert mine["totalCount"] == 1 and mine["edges"][0]["node"]["clientId"] == client_id
    assert (await program.gateway.citizen(1).data(MY_APPS))["myApps"]["totalCount"] == 0
    pending = (await operator.data(APPS, {"status": "PENDING", "first": 10}))["apps"]
    assert [e["node"]["clientId"] for e in pending["edges"]] == [client_id]

    approved = (await operator.data(APPROVE, {"id": client_id}))["approveApp"]
    assert approved["status"] == "ACTIVE" and approved["approvedAt"]
    token = await program.access_token(client_id, secret)
    me = (await program.me(token)).json()["data"]["me"]
    assert me == {"kind": "APP", "subject": client_id, "scopes": ["catalog:read"],
                  "sandbox": True}  # fmt: skip
    again = await operator.gql(APPROVE, {"id": client_id})
    assert again["errors"][0]["extensions"]["code"] == "CONFLICT"


async def test_scopes_beyond_the_apps_are_invalid_scope(program: Program) -> None:
    scopes = ["catalog:read", "service:LAND-001", "applications:read"]
    registered = await program.register(program.gateway.operator(), scopes=scopes)
    client_id, secret = registered["app"]["clientId"], registered["clientSecret"]
    for asked in ("applications:write", "catalog:read service:LAND-002"):
        refused = await program.token(client_id, secret, scope=asked)
        assert refused.status_code == 400 and oauth_error(refused) == "invalid_scope"
    narrow = await program.access_token(client_id, secret, scope="service:LAND-001")
    assert claims_of(narrow)["scope"] == "service:LAND-001"
    everything = await program.access_token(client_id, secret)
    assert claims_of(everything)["scope"] == " ".join(sorted(scopes))


async def test_rotation_keeps_the_old_secret_for_the_grace_only(program: Program) -> None:
    developer = program.gateway.citizen(0)
    registered = await program.register(developer)
    await program.gateway.operator().data(APPROVE, {"id": registered["app"]["clientId"]})
    client_id, old = registered["app"]["clientId"], registered["clientSecret"]
    old_token = await program.access_token(client_id, old)

    rotated = (await developer.data(ROTATE, {"id": client_id, "grace": 3600}))["rotateAppSecret"]
    new = rotated["clientSecret"]
    assert new != old and rotated["secretId"] != registered["secretId"]
    by_id = {s["id"]: s for s in rotated["app"]["secrets"]}
    assert by_id[registered["secretId"]]["expiresAt"] is not None
    assert by_id[rotated["secretId"]]["expiresAt"] is None

    program.clock.advance(3000)  # inside the grace: both secrets work
    assert (await program.token(client_id, old)).status_code == 200
    assert (await program.me(old_token)).status_code == 200
    new_token = await program.access_token(client_id, new)
    program.clock.advance(601)  # the grace is over
    late = await program.token(client_id, old)
    assert late.status_code == 401 and oauth_error(late) == "invalid_client"
    assert (await program.me(old_token)).status_code == 401
    assert (await program.me(new_token)).status_code == 200
    assert claims_of(new_token)["khaalga_secret_id"] == rotated["secretId"]

    stranger = await program.gateway.citizen(1).gql(ROTATE, {"id": client_id, "grace": 0})
    assert stranger["errors"][0]["extensions"]["code"] == "NOT_FOUND"
    too_long = await developer.gql(ROTATE, {"id": client_id, "grace": -1})
    assert too_long["errors"][0]["extensions"]["fields"]["graceSeconds"]["mn"]


async def test_a_revoked_secret_ends_its_tokens(program: Program) -> None:
    developer = program.gateway.citizen(0)
    registered = await program.register(program.gateway.operator())
    client_id, secret = registered["app"]["clientId"], registered["clientSecret"]
    token = await program.access_token(client_id, secret)
    assert (await program.me(token)).status_code == 200

    variables = {"id": client_id, "secret": registered["secretId"]}
    # Registered by the operator, so not this developer's: it does not exist for them.
    foreign = await developer.gql(REVOKE_SECRET, variables)
    assert foreign["errors"][0]["extensions"]["code"] == "NOT_FOUND"
    assert (await program.me(token)).status_code == 200
    revoked = await program.gateway.operator().data(REVOKE_SECRET, variables)
    assert revoked["revokeAppSecret"]["secrets"][0]["revokedAt"] is not None
    refused = await program.me(token)
    assert refused.status_code == 401
    assert "revoked or expired" in refused.json()["detail"]
    assert (await program.token(client_id, secret)).status_code == 401


async def test_suspension_and_revocation_end_an_apps_tokens(program: Program) -> None:
    operator = program.gateway.operator()
    registered = await program.register(operator)
    client_id, secret = registered["app"]["clientId"], registered["clientSecret"]
    token = await program.access_token(client_id, secret)

    assert (await operator.data(SUSPEND, {"id": client_id}))["suspendApp"]["status"] == "SUSPENDED"
    assert (await program.me(token)).status_code == 401
    suspended = await program.token(client_id, secret)
    assert suspended.status_code == 400 and oauth_error(suspended) == "unauthorized_client"
    await operator.data(APPROVE, {"id": client_id})
    assert (await program.me(token)).status_code == 200

    revoked = (await operator.data(REVOKE, {"id": client_id}))["revokeApp"]
    assert revoked["status"] == "REVOKED" and revoked["secrets"][0]["revokedAt"]
    assert (await program.me(token)).status_code == 401
    assert (await program.token(client_id, secret)).status_code == 401
    after = await operator.gql(APPROVE, {"id": client_id})
    assert after["errors"][0]["extensions"]["code"] == "CONFLICT"


async def test_the_database_holds_hashes_not_secrets(program: Program) -> None:
    registered = await program.register(program.gateway.operator())
    rotated = await program.gateway.operator().data(
        ROTATE, {"id": registered["app"]["clientId"], "grace": 60}
    )
    secrets = [registered["clientSecret"], rotated["rotateAppSecret"]["clientSecret"]]
    async with program.gateway.state.sessions() as session:
        apps = (await session.scalars(select(DeveloperApp))).all()
        rows = (await session.scalars(select(DeveloperAppSecret))).all()
        stored = repr([[getattr(r, c.key) for c in DeveloperApp.__table__.columns] for r in apps])
        stored += repr([[getattr(r, c.key) for c in DeveloperAppSecret.__table__.columns]
                        for r in rows])  # fmt: skip
    for secret in secrets:
        assert secret not in stored and secret[8:] not in stored
    assert sorted(r.hash for r in rows) == sorted(
        hashlib.sha256(s.encode()).hexdigest() for s in secrets
    )


async def test_an_operators_quota_reaches_the_principal(program: Program) -> None:
    operator = program.gateway.operator()
    registered = await program.register(operator, environment="SANDBOX")
    client_id, secret = registered["app"]["clientId"], registered["clientSecret"]
    variables = {"id": client_id, "requests": "1200/minute", "cost": "50000/hour"}
    quota = (await operator.data(QUOTA, variables))["setAppQuota"]["quota"]
    assert quota == {"requests": "1200/minute", "cost": "50000/hour"}
    token = await program.access_token(client_id, secret)

    store: AppStore = program.gateway.state.services.apps
    principal = await AppDirectory(store, ttl=0).principal(claims_of(token))
    assert principal.quota == Quota("1200/minute", "50000/hour")
    assert principal.sandbox and principal.subject == client_id

    bad = await operator.gql(
        QUOTA, {"id": client_id, "requests": "lots", "cost": "1/minute;2/hour"}
    )
    fields = bad["errors"][0]["extensions"]["fields"]
    assert bad["errors"][0]["extensions"]["code"] == "BAD_USER_INPUT"
    assert set(fields) == {"requests", "cost"} and "1200/minute" in fields["requests"]["en"]
    cleared = await operator.data(QUOTA, {"id": client_id})
    assert cleared["setAppQuota"]["quota"] == {"requests": None, "cost": None}


async def test_our_issuer_with_another_key_is_refused(program: Program) -> None:
    registered = await program.register(program.gateway.operator())
    token = await program.access_token(registered["app"]["clientId"], registered["clientSecret"])
    kid = header_of(token)["kid"]
    for forger in (
        RSAKey.generate_key(2048, {"kid": kid}, private=True),
        RSAKey.generate_key(2048, {"kid": "another"}, private=True),
    ):
        forged = jwt.encode({"alg": "RS256", "typ": "at+jwt", "kid": forger.kid},
                            claims_of(token), forger)  # fmt: skip
        assert (await program.me(forged)).status_code == 401
    assert (await program.me(token)).status_code == 200


async def test_registration_input_is_checked(program: Program) -> None:
    developer = program.gateway.citizen(0)
    wanted = {"name": "  ", "description": "x", "environment": "SANDBOX",
              "scopes": ["catalog:read", "service:NOPE-999"]}  # fmt: skip
    body = await developer.gql(REGISTER, {"input": wanted})
    error = body["errors"][0]["extensions"]
    assert error["code"] == "BAD_USER_INPUT" and set(error["fields"]) == {"name", "scopes"}
    assert "NOPE-999" in error["fields"]["scopes"]["en"]
    assert "NOPE-999" in error["fields"]["scopes"]["mn"]
    unknown = await developer.gql(REGISTER, {"input": {**wanted, "name": "ok",
                                                       "scopes": ["admin"]}})  # fmt: skip
    assert "unknown scope" in unknown["errors"][0]["extensions"]["fields"]["scopes"]["en"]
    none = await developer.gql(REGISTER, {"input": {**wanted, "name": "ok", "scopes": []}})
    assert none["errors"][0]["extensions"]["fields"]["scopes"]["en"] == "Choose at least one scope"
    control = await developer.gql(REGISTER, {"input": {**wanted, "name": "a\x00b",
                                                       "scopes": ["catalog:read"]}})  # fmt: skip
    assert set(control["errors"][0]["extensions"]["fields"]) == {"name"}
    assert (await developer.data(MY_APPS))["myApps"]["totalCount"] == 0


async def test_apps_are_paged_newest_first(program: Program) -> None:
    operator = program.gateway.operator()
    made = []
    for index in range(3):
        made.append((await program.register(operator, name=f"app {index}"))["app"]["clientId"])
        program.clock.advance(1)
    first = (await operator.data(APPS, {"first": 2}))["apps"]
    assert first["totalCount"] == 3 and first["pageInfo"]["hasNextPage"]
    after = {"first": 2, "after": first["pageInfo"]["endCursor"]}
    rest = (await operator.data(APPS, after))["apps"]
    assert not rest["pageInfo"]["hasNextPage"]
    seen = [e["node"]["clientId"] for e in first["edges"] + rest["edges"]]
    assert seen == made[::-1]
    bad = await operator.gql(APPS, {"first": 2, "after": "bm9wZQ=="})
    assert bad["errors"][0]["extensions"]["code"] == "BAD_USER_INPUT"


async def test_the_token_endpoint_is_rate_limited_per_address(
    database_url: str, tmp_path: Path
) -> None:
    settings = Settings(
        var_dir=tmp_path, database_url=database_url, worker=False,
        rate_limits="anonymous=3/minute,operator=100/minute",
    )  # fmt: skip
    app = create_app(settings)
    async with (
        app.router.lifespan_context(app),
        httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://k") as http,
    ):
        program = Program(Gateway(http, app, settings), Clock())
        registered = await program.register(program.gateway.operator())
        client_id, secret = registered["app"]["clientId"], registered["clientSecret"]
        answers = [await program.token(client_id, secret) for _ in range(4)]
    assert [a.status_code for a in answers] == [200, 200, 200, 429]
    refused = answers[-1]
    assert refused.headers["content-type"] == "application/problem+json"
    assert int(refused.headers["retry-after"]) >= 1
    assert refused.headers["ratelimit-policy"].startswith('"anonymous";q=3')
