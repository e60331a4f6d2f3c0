"""Where the catalog query's time goes: pyinstrument around the app called
directly over ASGI (no sockets, no HTTP parser), so the profile is the
gateway's own work: middleware, strawberry, graphql-core, serialisation."""

from __future__ import annotations

import asyncio
import dataclasses
import tempfile
from pathlib import Path
from typing import Any

import orjson
from pyinstrument import Profiler

from bench.scenarios import CATALOG

REQUESTS = 2000


async def _call(app: Any, body: bytes) -> None:
    scope = {
        "type": "http", "asgi": {"version": "3.0"}, "http_version": "1.1", "method": "POST",
        "scheme": "http", "path": "/graphql", "raw_path": b"/graphql", "query_string": b"",
        "root_path": "", "client": ("127.0.0.1", 1), "server": ("127.0.0.1", 8000),
        "headers": [(b"content-type", b"application/json"),
                    (b"content-length", str(len(body)).encode())],
    }  # fmt: skip
    sent = False

    async def receive() -> dict[str, Any]:
        nonlocal sent
        if sent:
            await asyncio.sleep(3600)
        sent = True
        return {"type": "http.request", "body": body, "more_body": False}

    async def send(message: dict[str, Any]) -> None:
        pass

    await app(scope, receive, send)


async def _profile() -> list[str]:
    from gateway.app import create_app
    from gateway.db.migrate import upgrade_async
    from gateway.settings import Settings

    with tempfile.TemporaryDirectory() as tmp:
        settings = Settings(var_dir=Path(tmp), worker=False, log_format="text")
        if "rate_limits" in {f.name for f in dataclasses.fields(settings)}:
            # 2,000 anonymous requests from one address would be refused.
            settings = dataclasses.replace(settings, rate_limits="")
        await upgrade_async(settings.database_url)
        app = create_app(settings)
        body = orjson.dumps({"query": CATALOG})
        async with app.router.lifespan_context(app):
            for _ in range(200):  # warm-up
                await _call(app, body)
            profiler = Profiler(interval=0.0005, async_mode="enabled")
            profiler.start()
            for _ in range(REQUESTS):
                await _call(app, body)
            profiler.stop()
    # Text only: pyinstrument's HTML for 2,000 requests is tens of megabytes.
    text = profiler.output_text(unicode=False, color=False, show_all=False)
    return text.splitlines()[:80]


def profile_catalog() -> list[str]:
    return asyncio.run(_profile())
