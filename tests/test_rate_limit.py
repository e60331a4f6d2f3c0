"""Rate limits per principal: request and cost budgets, an app's own quota,
headers, 429s, and one budget shared through Redis by gateway processes."""

from __future__ import annotations

import contextlib
import logging
import os
import subprocess
import sys
import time
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from starlette.applications import Starlette

from auth.principal import Principal, PrincipalKind, Quota
from auth.tokens import TokenValidator
from gateway.app import create_app
from gateway.rate_limit import DEFAULT_LIMITS, RateLimiter, quota_item, seconds_until_room
from gateway.settings import Settings, SettingsError, from_env
from tests.support.gateway import Api, citizen_token, free_port

CATALOG_QUERY = "{ agencies { code } }"


@pytest.fixture
async def api(tmp_path: Path) -> AsyncIterator[Api]:
    settings = Settings(
        var_dir=tmp_path, worker=False, rate_limits="anonymous=3/minute,citizen=5/minute"
    )
    app = create_app(settings)
    transport = httpx.ASGITransport(app=app, client=("203.0.113.7", 5000))
    async with (
        app.router.lifespan_context(app),
        httpx.AsyncClient(transport=transport, base_url="http://k") as http,
    ):
        client = Api(http)
        client.settings = settings  # type: ignore[attr-defined]
        yield client


async def test_answers_carry_the_policy_and_what_is_left(api: Api) -> None:
    response = await api.post(CATALOG_QUERY)  # costs 11
    assert response.status_code == 200
    # Without KHAALGA_COST_LIMITS, each limited kind has a cost budget in
    # proportion, here raised to KHAALGA_MAX_COST (5000).
    assert response.headers["ratelimit-policy"] == (
        '"anonymous";q=3;w=60, "anonymous-cost";q=5000;qu="khaalga-cost";w=60'
    )
    requests, cost = response.headers["ratelimit"].split(", ")
    assert requests.startswith('"anonymous";r=2;t=')
    assert cost.startswith('"anonymous-cost";r=4989;t=')


async def test_anonymous_over_its_limit_gets_a_429_problem(api: Api) -> None:
    for _ in range(3):
        assert (await api.post(CATALOG_QUERY)).status_code == 200
    refused = await api.post(CATALOG_QUERY)
    assert refused.status_code == 429
    assert refused.headers["content-type"] == "application/problem+json"
    assert 1 <= int(refused.headers["retry-after"]) <= 60
    assert refused.headers["ratelimit"].startswith('"anonymous";r=0;t=')
    assert refused.json()["status"] == 429
    assert "anonymous" in refused.json()["detail"]
    metrics = (await api.http.get("/metrics")).text
    assert 'khaalga_rate_limit_rejections_total{policy="anonymous"} 1.0' in metrics


async def test_each_citizen_has_a_budget_of_their_own(api: Api) -> None:
    for _ in range(3):
        await api.post(CATALOG_QUERY)
    assert (await api.post(CATALOG_QUERY)).status_code == 429  # anonymous spent
    settings: Settings = api.settings  # type: ignore[attr-defined]
    alice = api.as_(citizen_token(settings, "УБ99010112"))
    bob = api.as_(citizen_token(settings, "ТА85122304"))
    for _ in range(5):
        assert (await alice.post(CATALOG_QUERY)).status_code == 200
    assert (await alice.post(CATALOG_QUERY)).status_code == 429
    answered = await bob.post(CATALOG_QUERY)
    assert answered.status_code == 200
    assert answered.headers["ratelimit"].startswith('"citizen";r=4;')


def test_a_bad_limit_setting_is_a_clear_error(tmp_path: Path) -> None:
    with pytest.raises(SettingsError, match="KHAALGA_RATE_LIMITS: bad entry 'citizen=lots'"):
        create_app(Settings(var_dir=tmp_path, rate_limits="citizen=lots"))


def _serve(port: int, var: Path, redis_url: str, prefix: str) -> subprocess.Popen[bytes]:
    env = {
        **os.environ,
        "KHAALGA_ENV": "development",
        "KHAALGA_PORT": str(port),
        "KHAALGA_VAR_DIR": str(var),
        "KHAALGA_WORKER": "0",
        "KHAALGA_REDIS_URL": redis_url,
        "KHAALGA_REDIS_PREFIX": prefix,
        "KHAALGA_RATE_LIMITS": "anonymous=4/minute",
    }
    return subprocess.Popen(
        [sys.executable, "-m", "gateway.cli", "serve"],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )


def test_two_gateway_processes_share_one_budget_in_redis(
    tmp_path: Path, redis_url: str, redis_prefix: str
) -> None:
    prefix = redis_prefix
    ports = [free_port(), free_port()]
    processes = [_serve(port, tmp_path, redis_url, prefix) for port in ports]
    try:
        urls = [f"http://127.0.0.1:{port}" for port in ports]
        deadline = time.monotonic() + 120  # generous: CI machines run other suites too
        for url in urls:
            while True:
                try:
                    if httpx.get(f"{url}/healthz", timeout=1).status_code == 200:
                        break
                except httpx.HTTPError:
                    pass
                assert time.monotonic() < deadline, "gateway did not start"
                time.sleep(0.2)
        statuses = [
            httpx.post(f"{urls[i % 2]}/graphql", json={"query": CATALOG_QUERY}).status_code
            for i in range(6)
        ]
        assert statuses == [200, 200, 200, 200, 429, 429]
    finally:
        for process in processes:
            process.terminate()
            process.wait(timeout=10)


# Cost 2 (reads the agencies by code) and 1,321 (reads the agency list).
CHEAP = '{ agency(code: "LAND") { code } }'
EXPENSIVE = "{ agencies { code services { code form { fields { name } } } } }"


def expensive(n: int) -> str:
    """EXPENSIVE as a document of its own, so that it executes even where
    the catalog's response cache holds the answer to another one."""
    return f"query Expensive{n} {EXPENSIVE}"


class _Reads(list[Any]):
    """The agency list, counting how often a resolver reads it."""

    reads = 0

    def __iter__(self) -> Iterator[Any]:
        _Reads.reads += 1
        return super().__iter__()


@contextlib.asynccontextmanager
async def serving(app: Starlette) -> AsyncIterator[Api]:
    transport = httpx.ASGITransport(app=app, client=("203.0.113.7", 5000))
    async with (
        app.router.lifespan_context(app),
        httpx.AsyncClient(transport=transport, base_url="http://k") as http,
    ):
        yield Api(http)


def limited(response: httpx.Response) -> dict[str, str]:
    """RateLimit's items by policy name."""
    items = response.headers["ratelimit"].split(", ")
    return {item.split(";")[0].strip('"'): item for item in items}


async def test_expensive_operations_use_up_the_cost_budget_cheap_ones_count_little(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    settings = Settings(
        var_dir=tmp_path,
        worker=False,
        rate_limits="anonymous=100/minute",
        cost_limits="anonymous=3000/minute",
    )
    # The cost window is a sliding counter: a minute boundary passed during
    # the test would decay what was spent. Time stands still mid-window.
    frozen = _FrozenTime(60 * 29_000_000 + 30)
    monkeypatch.setattr("limits.aio.storage.memory.time", frozen)
    monkeypatch.setattr("limits.aio.strategies.time", frozen)
    monkeypatch.setattr("gateway.rate_limit.time", frozen)
    app = create_app(settings)
    view = app.state.services.view
    monkeypatch.setattr(view, "agency_list", _Reads(view.agency_list))
    _Reads.reads = 0
    async with serving(app) as api:
        cheap = await api.post(CHEAP)
        assert cheap.status_code == 200
        assert limited(cheap)["anonymous-cost"].startswith('"anonymous-cost";r=2998;')
        for n in range(2):
            assert (await api.post(expensive(n))).status_code == 200
        assert _Reads.reads == 2

        refused = await api.post(expensive(2))  # 356 left, costs 1,321
        assert refused.status_code == 429
        assert _Reads.reads == 2  # refused before any resolver ran
        assert refused.headers["content-type"] == "application/problem+json"
        assert 1 <= int(refused.headers["retry-after"]) <= 120  # at most two windows
        problem = refused.json()
        assert problem["status"] == 429
        assert problem["violated-policies"] == ["anonymous-cost"]
        assert "anonymous-cost" in problem["detail"] and "costs 1321" in problem["detail"]
        assert refused.headers["ratelimit-policy"] == (
            '"anonymous";q=100;w=60, "anonymous-cost";q=3000;qu="khaalga-cost";w=60'
        )
        items = limited(refused)
        assert items["anonymous"].startswith('"anonymous";r=96;')
        assert items["anonymous-cost"].startswith('"anonymous-cost";r=356;')

        # What is left still pays for cheap operations.
        again = await api.post(CHEAP)
        assert again.status_code == 200 and again.json() == {"data": {"agency": {"code": "LAND"}}}
        assert limited(again)["anonymous-cost"].startswith('"anonymous-cost";r=354;')


class _FrozenTime:
    def __init__(self, now: float) -> None:
        self.now = now

    def time(self) -> float:
        return self.now


async def test_a_persisted_query_is_charged_like_any_other(tmp_path: Path) -> None:
    import hashlib

    settings = Settings(var_dir=tmp_path, worker=False, cost_limits="anonymous=3000/minute")
    persisted = {
        "persistedQuery": {"version": 1, "sha256Hash": hashlib.sha256(CHEAP.encode()).hexdigest()}
    }
    async with serving(create_app(settings)) as api:
        registered = await api.http.post("/graphql", json={"query": CHEAP, "extensions": persisted})
        by_hash = await api.http.post("/graphql", json={"extensions": persisted})
    assert by_hash.json() == {"data": {"agency": {"code": "LAND"}}}
    assert limited(registered)["anonymous-cost"].startswith('"anonymous-cost";r=2998;')
    assert limited(by_hash)["anonymous-cost"].startswith('"anonymous-cost";r=2996;')


def test_cost_limits_are_read_from_the_environment(tmp_path: Path) -> None:
    assert from_env({}).cost_limits is None
    assert from_env({"KHAALGA_COST_LIMITS": "citizen=10/minute"}).cost_limits == "citizen=10/minute"
    bad = Settings(var_dir=tmp_path, cost_limits="citizen=cheap")
    with pytest.raises(SettingsError, match="KHAALGA_COST_LIMITS: bad entry 'citizen=cheap'"):
        create_app(bad)


def test_default_cost_budgets_follow_the_request_budgets() -> None:
    anonymous, client = Principal(PrincipalKind.ANONYMOUS), "203.0.113.7"
    defaults = RateLimiter.build(DEFAULT_LIMITS, None, "k", min_cost=5000)
    citizen = Principal(PrincipalKind.CITIZEN, "УБ99010112")
    costs = [defaults.applicable(p, client)[1] for p in (anonymous, citizen)]
    assert [c.field() if c else None for c in costs] == [
        '"anonymous-cost";q=6000;qu="khaalga-cost";w=60',
        '"citizen-cost";q=60000;qu="khaalga-cost";w=60',
    ]
    hourly = RateLimiter.build("anonymous=10/2 hours", None, "k", min_cost=5000)
    _, cost = hourly.applicable(anonymous, client)
    assert cost is not None and cost.field() == '"anonymous-cost";q=5000;qu="khaalga-cost";w=7200'
    # No request budget, no cost budget: KHAALGA_RATE_LIMITS="" turns both off...
    assert RateLimiter.build("", None, "k").applicable(anonymous, client) == (None, None)
    citizen_only = RateLimiter.build("citizen=5/minute", None, "k")
    assert citizen_only.applicable(anonymous, client) == (None, None)
    # ...unless KHAALGA_COST_LIMITS says otherwise.
    explicit = RateLimiter.build("", None, "k", "anonymous=100/minute")
    requests, cost = explicit.applicable(anonymous, client)
    assert requests is None and cost is not None and cost.name == "anonymous-cost"


@pytest.mark.parametrize(
    ("window", "expected"),
    [
        # 100 units, a 60 s window; (previous, its seconds left, current, seconds left + 60)
        ((90, 30.0, 0, 90.0), 0.0),  # weighs 45: 10 fit now
        ((100, 60.0, 0, 120.0), 6.0),  # weighs 100; at 90 after 6 s
        ((0, 0.0, 95, 90.0), 30.0 + 60.0 - 90 * 60 / 95),  # after the shift, 95 must fade to 90
    ],
)
def test_retry_after_is_when_the_sliding_window_has_room(
    window: tuple[int, float, int, float], expected: float
) -> None:
    assert seconds_until_room(100, 60, 10, window) == pytest.approx(expected)


APPS = {
    "metered": Principal(
        PrincipalKind.APP,
        "client-metered",
        scopes=frozenset({"catalog:read"}),
        quota=Quota(requests="3/minute", cost="20/minute"),
    ),
    "plain": Principal(PrincipalKind.APP, "client-plain", scopes=frozenset({"catalog:read"})),
    "broken": Principal(
        PrincipalKind.APP,
        "client-broken",
        scopes=frozenset({"catalog:read"}),
        quota=Quota(requests="lots", cost="1200 per fortnight"),
    ),
}


@pytest.fixture
async def apps(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> AsyncIterator[Api]:
    """The gateway, with bearer tokens that name one of ``APPS``: the
    developer program sets quotas on the principal, not in the token."""

    async def principal(_: TokenValidator, token: str) -> Principal:
        return APPS[token]

    monkeypatch.setattr(TokenValidator, "principal", principal)
    settings = Settings(var_dir=tmp_path, worker=False, rate_limits="app=5/minute")
    async with serving(create_app(settings)) as api:
        yield api


async def test_an_apps_own_quota_replaces_the_app_default(apps: Api) -> None:
    metered = apps.as_("metered")
    first = await metered.post(CATALOG_QUERY)  # costs 11 of 20
    assert first.status_code == 200
    assert first.headers["ratelimit-policy"] == (
        '"app-quota";q=3;w=60, "app-quota-cost";q=20;qu="khaalga-cost";w=60'
    )
    over_cost = await metered.post(CATALOG_QUERY)
    assert over_cost.status_code == 429
    assert over_cost.json()["violated-policies"] == ["app-quota-cost"]
    assert (await metered.post(CHEAP)).status_code == 200  # costs 2; the 3rd request
    over_count = await metered.post(CHEAP)
    assert over_count.status_code == 429
    assert over_count.json()["violated-policies"] == ["app-quota"]
    assert "app-quota budget of 3 requests" in over_count.json()["detail"]

    # Counted per client id: another app has the APP default, untouched.
    plain = await apps.as_("plain").post(CATALOG_QUERY)
    assert plain.status_code == 200
    assert plain.headers["ratelimit-policy"] == (
        '"app";q=5;w=60, "app-cost";q=5000;qu="khaalga-cost";w=60'
    )
    assert limited(plain)["app"].startswith('"app";r=4;')


async def test_a_malformed_quota_falls_back_to_the_default_and_is_logged_once(
    apps: Api, caplog: pytest.LogCaptureFixture
) -> None:
    quota_item.cache_clear()  # logged once per process: forget earlier tests
    broken = apps.as_("broken")
    with caplog.at_level(logging.WARNING, logger="khaalga.rate_limit"):
        for _ in range(2):
            answered = await broken.post(CATALOG_QUERY)
            assert answered.status_code == 200
            assert answered.headers["ratelimit-policy"].startswith('"app";q=5;w=60, "app-cost";')
    warnings = [r for r in caplog.records if r.name == "khaalga.rate_limit"]
    # Once per malformed value, however many requests; and no client id.
    assert len(warnings) == 2
    assert all("client-broken" not in r.getMessage() for r in warnings)


async def test_storage_errors_fail_open(tmp_path: Path) -> None:
    # Nothing listens on the port: every budget lookup fails.
    settings = Settings(
        var_dir=tmp_path,
        worker=False,
        rate_limits="anonymous=1/minute",
        cost_limits="anonymous=1/minute",
        redis_url=f"redis://127.0.0.1:{free_port()}/0",
    )
    async with serving(create_app(settings)) as api:
        for _ in range(3):
            answered = await api.post(CATALOG_QUERY)
            assert answered.status_code == 200
            assert "ratelimit" not in answered.headers  # nothing counted, nothing claimed


async def test_two_gateway_instances_share_one_cost_budget_in_redis(
    tmp_path: Path, redis_url: str, redis_prefix: str
) -> None:
    settings = Settings(
        var_dir=tmp_path,
        worker=False,
        rate_limits="anonymous=100/minute",
        cost_limits="anonymous=3000/minute",
        redis_url=redis_url,
        redis_prefix=redis_prefix,
    )
    async with serving(create_app(settings)) as one, serving(create_app(settings)) as two:
        assert (await one.post(EXPENSIVE)).status_code == 200
        assert (await two.post(EXPENSIVE)).status_code == 200
        refused = await one.post(EXPENSIVE)
        assert refused.status_code == 429
        assert limited(refused)["anonymous-cost"].startswith('"anonymous-cost";r=358;')
        cheap = await two.post(CHEAP)
        assert cheap.status_code == 200
        assert limited(cheap)["anonymous-cost"].startswith('"anonymous-cost";r=356;')
