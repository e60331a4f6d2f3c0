"""The gateway as clients see it over HTTP: in-process for most tests, on a
loopback port for the npm audits. Rate limits are off here (their own tests
are elsewhere); everything else is the real app on SQLite."""

from __future__ import annotations

import asyncio
import contextlib
import threading
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from starlette.applications import Starlette

from gateway.app import create_app
from gateway.db.migrate import upgrade_async
from gateway.settings import Settings
from tests.support.gateway import served

GRAPHQL_RESPONSE = "application/graphql-response+json"


def settings_for(tmp_path: Path, **changes: Any) -> Settings:
    url = f"sqlite+aiosqlite:///{tmp_path / 'khaalga.sqlite'}"
    return Settings(var_dir=tmp_path, database_url=url, worker=False, rate_limits="", **changes)


@contextlib.asynccontextmanager
async def client_for(settings: Settings) -> AsyncIterator[httpx.AsyncClient]:
    await upgrade_async(settings.database_url)
    app = create_app(settings)
    transport = httpx.ASGITransport(app=app)
    async with (
        app.router.lifespan_context(app),
        httpx.AsyncClient(transport=transport, base_url="http://khaalga.test") as client,
    ):
        client.app = app  # type: ignore[attr-defined]
        yield client


@pytest.fixture
async def dev(tmp_path: Path) -> AsyncIterator[httpx.AsyncClient]:
    """The gateway as ``make run`` serves it (development defaults)."""
    async with client_for(settings_for(tmp_path)) as client:
        yield client


@pytest.fixture
async def prod(tmp_path: Path) -> AsyncIterator[httpx.AsyncClient]:
    """The gateway with production defaults."""
    async with client_for(settings_for(tmp_path, env="production")) as client:
        yield client


@contextlib.contextmanager
def served_in_thread(settings: Settings) -> Iterator[str]:
    """Serve the app on a loopback port from a thread with its own event loop,
    so that one server can outlive the test functions of a module."""
    ready: list[str] = []
    started, stop = threading.Event(), threading.Event()
    failure: list[BaseException] = []

    async def serve() -> None:
        await upgrade_async(settings.database_url)
        app: Starlette = create_app(settings)
        async with served(app) as url:
            ready.append(url)
            started.set()
            await asyncio.to_thread(stop.wait)

    def run() -> None:
        try:
            asyncio.run(serve())
        except BaseException as exc:  # reported to the test thread below
            failure.append(exc)
            started.set()

    thread = threading.Thread(target=run, name="gateway", daemon=True)
    thread.start()
    started.wait(30)
    if failure:
        raise failure[0]
    try:
        yield ready[0]
    finally:
        stop.set()
        thread.join(30)


class Spy:
    """Counts the catalog view's reads behind ``agency(code:)`` and ``agencies``,
    to show that a refused operation ran no resolver."""

    def __init__(self) -> None:
        self.calls = 0


class _SpyDict(dict[str, Any]):
    def __init__(self, spy: Spy, items: dict[str, Any]) -> None:
        super().__init__(items)
        self.spy = spy

    def get(self, key: str, default: Any = None) -> Any:
        self.spy.calls += 1
        return super().get(key, default)


class _SpyList(list[Any]):
    def __init__(self, spy: Spy, items: list[Any]) -> None:
        super().__init__(items)
        self.spy = spy

    def __iter__(self) -> Iterator[Any]:
        self.spy.calls += 1
        return super().__iter__()


@pytest.fixture
def spy(dev: httpx.AsyncClient, monkeypatch: pytest.MonkeyPatch) -> Spy:
    view = dev.app.state.services.view  # type: ignore[attr-defined]
    counter = Spy()
    monkeypatch.setattr(view, "agencies", _SpyDict(counter, view.agencies))
    monkeypatch.setattr(view, "agency_list", _SpyList(counter, view.agency_list))
    return counter


async def graphql(
    client: httpx.AsyncClient,
    query: str | None,
    variables: dict[str, Any] | None = None,
    *,
    extensions: dict[str, Any] | None = None,
    accept: str = GRAPHQL_RESPONSE,
) -> tuple[int, dict[str, Any]]:
    body: dict[str, Any] = {"query": query, "variables": variables, "extensions": extensions}
    response = await client.post("/graphql", json=body, headers={"accept": accept})
    assert response.headers["content-type"].startswith(accept), response.text
    result: dict[str, Any] = response.json()
    return response.status_code, result
