"""The app directory behind the gateway's own tokens: what it makes of the
claims, and how quickly a change made elsewhere reaches it."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import pytest
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from auth.apps.directory import AppDirectory
from auth.apps.issuer import ENV_CLAIM, SECRET_CLAIM
from auth.apps.model import App as AppModel
from auth.apps.model import AppEnvironment, IssuedSecret
from auth.apps.store import AppStore
from auth.principal import Principal, PrincipalKind, Quota
from auth.tokens import InvalidToken, IssuerUnavailable
from gateway.db.engine import create_engine, session_factory

OPERATOR = Principal(PrincipalKind.OPERATOR, "operator-1")


class Timer:
    now = 100.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
async def sessions(database_url: str) -> AsyncIterator[async_sessionmaker[AsyncSession]]:
    engine = create_engine(database_url)
    yield session_factory(engine)
    await engine.dispose()


async def register(store: AppStore) -> tuple[AppModel, IssuedSecret]:
    return await store.register(
        name="Parking", description="", purpose=None, environment=AppEnvironment.SANDBOX,
        scopes=["catalog:read", "service:LAND-001"], owner=OPERATOR,
    )  # fmt: skip


def claims_for(app: AppModel, secret: IssuedSecret, **changes: Any) -> dict[str, Any]:
    return {"sub": app.client_id, "client_id": app.client_id, "scope": "catalog:read",
            ENV_CLAIM: "sandbox", SECRET_CLAIM: secret.id, **changes}  # fmt: skip


async def test_claims_become_the_apps_current_principal(
    sessions: async_sessionmaker[AsyncSession],
) -> None:
    store = AppStore(sessions)
    directory = AppDirectory(store, ttl=0)
    app, secret = await register(store)
    await store.set_quota(app.client_id, Quota("10/second", None))
    # A scope the app no longer holds (or never held) is dropped, not honoured.
    wide = claims_for(app, secret, scope="catalog:read applications:write service:LAND-001")
    principal = await directory.principal(wide)
    assert principal == Principal(
        PrincipalKind.APP, app.client_id, None, frozenset({"catalog:read", "service:LAND-001"}),
        sandbox=True, quota=Quota("10/second", None),
    )  # fmt: skip
    refused = {
        "another environment": claims_for(app, secret, **{ENV_CLAIM: "production"}),
        "another secret": claims_for(app, secret, **{SECRET_CLAIM: "0" * 32}),
        "no secret": {k: v for k, v in claims_for(app, secret).items() if k != SECRET_CLAIM},
        "not the client": claims_for(app, secret, sub="someone-else"),
        "unknown app": claims_for(app, secret, sub="app_x", client_id="app_x"),
    }
    for name, claims in refused.items():
        with pytest.raises(InvalidToken):
            await directory.principal(claims)
            pytest.fail(name)


async def test_changes_elsewhere_show_within_the_ttl_and_here_at_once(
    sessions: async_sessionmaker[AsyncSession],
) -> None:
    here, elsewhere = AppStore(sessions), AppStore(sessions)  # two gateway processes
    timer = Timer()
    directory = AppDirectory(here, ttl=5.0, timer=timer)
    app, secret = await register(here)
    claims = claims_for(app, secret)
    assert (await directory.principal(claims)).subject == app.client_id

    await elsewhere.suspend(app.client_id)
    timer.now += 4.9  # still the cached record: the documented staleness
    assert (await directory.principal(claims)).subject == app.client_id
    timer.now += 0.2
    with pytest.raises(InvalidToken, match="not active"):
        await directory.principal(claims)

    await here.approve(app.client_id)  # in this process the cache is dropped at once
    assert (await directory.principal(claims)).subject == app.client_id
    await here.revoke_secret(app.client_id, secret.id)
    with pytest.raises(InvalidToken, match="revoked or expired"):
        await directory.principal(claims)


async def test_an_unreachable_database_is_unavailable_not_invalid() -> None:
    engine = create_engine("postgresql+asyncpg://root@127.0.0.1:1/nowhere")  # refused
    try:
        directory = AppDirectory(AppStore(session_factory(engine)), ttl=0)
        client_id = "app_" + "0" * 20
        claims = {"sub": client_id, "client_id": client_id, ENV_CLAIM: "production"}
        with pytest.raises(IssuerUnavailable) as caught:
            await directory.principal(claims)
        assert caught.value.retry_after > 0
    finally:
        await engine.dispose()
