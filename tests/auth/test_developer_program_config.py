"""The developer program's issuer in production: a key file and an issuer URL
turn the token endpoint on; without a key it is off (404), and says so."""

from __future__ import annotations

import contextlib
import dataclasses
import logging
from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import pytest
from joserfc.jwk import RSAKey
from starlette.applications import Starlette

from auth.apps.issuer import GatewayIssuer
from auth.apps.model import AppEnvironment
from auth.apps.store import AppStore
from auth.apps.token_endpoint import TokenEndpoint
from auth.principal import Principal, PrincipalKind
from gateway.app import create_app
from gateway.db.engine import create_engine, session_factory
from gateway.db.migrate import upgrade_async
from gateway.settings import ROOT, Settings, SettingsError

ISSUER = "https://gateway.example.mn"


def production(tmp_path: Path, **changes: object) -> Settings:
    settings = Settings(
        env="production", var_dir=tmp_path, catalog_dir=ROOT / "catalog", worker=False,
        database_url=f"sqlite+aiosqlite:///{tmp_path / 'k.sqlite'}",
    )  # fmt: skip
    return dataclasses.replace(settings, **changes)  # type: ignore[arg-type]


def key_file(tmp_path: Path, *, private: bool = True) -> tuple[Path, RSAKey]:
    key = RSAKey.generate_key(2048, private=True)
    path = tmp_path / ("issuer.pem" if private else "public.pem")
    path.write_bytes(key.as_pem(private=private))
    return path, key


@contextlib.asynccontextmanager
async def running(settings: Settings) -> AsyncIterator[tuple[httpx.AsyncClient, AppStore]]:
    await upgrade_async(settings.database_url)
    app = create_app(settings)
    async with (
        app.router.lifespan_context(app),
        httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://k") as http,
    ):
        yield http, app.state.services.apps


async def test_without_a_key_file_production_serves_no_token_endpoint(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level(logging.WARNING, logger="khaalga.apps"):
        async with running(production(tmp_path, issuer_url=ISSUER)) as (http, _):
            form = {"grant_type": "client_credentials"}
            assert (await http.post("/oauth/token", data=form)).status_code == 404
            assert (await http.get("/.well-known/oauth-authorization-server")).status_code == 404
    assert any("KHAALGA_ISSUER_KEY_FILE" in r.getMessage() for r in caplog.records)


async def test_a_key_file_makes_the_gateway_an_issuer(tmp_path: Path) -> None:
    path, key = key_file(tmp_path)
    settings = production(tmp_path, issuer_url=ISSUER + "/", issuer_key_file=path,
                          token_lifetime=120)  # fmt: skip
    async with running(settings) as (http, store):
        app, secret = await store.register(
            name="Reports", description="", purpose=None, environment=AppEnvironment.PRODUCTION,
            scopes=["catalog:read"], owner=Principal(PrincipalKind.OPERATOR, "op"),
        )  # fmt: skip
        metadata = (await http.get("/.well-known/oauth-authorization-server")).json()
        assert metadata["issuer"] == ISSUER
        assert metadata["token_endpoint"] == ISSUER + "/oauth/token"
        response = await http.post(
            "/oauth/token", data={"grant_type": "client_credentials"},
            auth=(app.client_id, secret.value),
        )  # fmt: skip
        assert response.status_code == 200, response.text
        assert response.json()["expires_in"] == 120
        token = response.json()["access_token"]
        jwks = (await http.get("/oauth/jwks")).json()["keys"]
        assert [k["n"] for k in jwks] == [key.as_dict()["n"]]
        assert jwks[0]["kid"] == key.thumbprint()
        me = await http.post(
            "/graphql", json={"query": "{ me { kind subject } }"},
            headers={"Authorization": f"Bearer {token}"},
        )  # fmt: skip
        assert me.json()["data"]["me"] == {"kind": "APP", "subject": app.client_id}


@pytest.mark.parametrize(
    ("changes", "complaint"),
    [
        ({"issuer_url": None}, "KHAALGA_ISSUER_URL is needed"),
        ({"issuer_url": "http://gateway.example.mn"}, "https"),
        ({"issuer_url": ISSUER + "/?x=1"}, "without query"),
        ({"oidc_issuer": ISSUER}, "differ"),
        ({"issuer_key_file": "public"}, "public key"),
        ({"issuer_key_file": "missing"}, "cannot read"),
        ({"token_lifetime": 0}, "at least 1 second"),
    ],
)
def test_a_misconfigured_issuer_stops_the_start(
    tmp_path: Path, changes: dict[str, object], complaint: str
) -> None:
    path, _ = key_file(tmp_path)
    files = {"public": key_file(tmp_path, private=False)[0], "missing": tmp_path / "none.pem"}
    wanted = {"issuer_url": ISSUER, "issuer_key_file": path, **changes}
    if isinstance(wanted["issuer_key_file"], str):
        wanted["issuer_key_file"] = files[wanted["issuer_key_file"]]
    with pytest.raises(SettingsError, match=complaint):
        create_app(production(tmp_path, **wanted))


async def test_an_unreachable_app_registry_is_503(tmp_path: Path) -> None:
    engine = create_engine("postgresql+asyncpg://root@127.0.0.1:1/nowhere")  # refused
    try:
        issuer = GatewayIssuer(ISSUER, "khaalga", key_file(tmp_path)[1])
        endpoint = TokenEndpoint(issuer, AppStore(session_factory(engine)), list)
        transport = httpx.ASGITransport(app=Starlette(routes=endpoint.routes()))
        async with httpx.AsyncClient(transport=transport, base_url="http://k") as http:
            response = await http.post(
                "/oauth/token",
                data={"grant_type": "client_credentials"},
                auth=("app_" + "0" * 20, "s"),
            )
        assert response.status_code == 503 and response.headers["retry-after"] == "5"
        assert response.json()["error"] == "temporarily_unavailable"
    finally:
        await engine.dispose()
