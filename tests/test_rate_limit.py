"""Rate limits per principal: headers, 429s, and one budget shared through
Redis by two gateway processes."""

from __future__ import annotations

import os
import subprocess
import sys
import time
import uuid
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import httpx
import pytest
import redis

from gateway.app import create_app
from gateway.settings import Settings, SettingsError
from tests.conftest import unavailable
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
    response = await api.post(CATALOG_QUERY)
    assert response.status_code == 200
    assert response.headers["ratelimit-policy"] == '"anonymous";q=3;w=60'
    assert response.headers["ratelimit"].startswith('"anonymous";r=2;t=')


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


@pytest.fixture
def redis_url() -> Iterator[str]:
    url = "redis://127.0.0.1:6379/0"
    client = redis.Redis.from_url(url, socket_connect_timeout=2)
    try:
        client.ping()
    except redis.RedisError as exc:
        unavailable("Redis on 127.0.0.1:6379", exc)
    finally:
        client.close()
    yield url


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


def test_two_gateway_processes_share_one_budget_in_redis(tmp_path: Path, redis_url: str) -> None:
    prefix = f"khaalga-test-{uuid.uuid4().hex[:8]}"
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
        client = redis.Redis.from_url(redis_url)
        for key in client.scan_iter(f"{prefix}*"):
            client.delete(key)
        client.close()
