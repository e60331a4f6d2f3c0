"""The gateway in process, called directly over ASGI: no sockets, no HTTP
parser, so what is timed or profiled is the gateway's own work."""

from __future__ import annotations

import asyncio
import dataclasses
from pathlib import Path
from typing import Any

from gateway.settings import Settings


def in_process_settings(var_dir: Path, sim_base_port: int, **changes: Any) -> Settings:
    """The run's own database and development key (its servers are stopped by
    then) and its simulators; no delivery worker, no rate limits, ``changes``."""
    from gateway.catalog.loader import load_catalog
    from legacy.topology import default_ports, embedded_endpoints

    settings = Settings(var_dir=var_dir, worker=False, log_format="text", rate_limits="")
    catalog = load_catalog(settings.catalog_dir)
    ports = default_ports(catalog, sim_base_port)
    backends = embedded_endpoints(catalog, var_dir / "legacy", ports)
    return dataclasses.replace(settings, backends=backends, **changes)


async def call(app: Any, body: bytes, headers: dict[str, str] | None = None) -> tuple[int, bytes]:
    """The answer's status and body."""
    extra = [(k.lower().encode(), v.encode()) for k, v in (headers or {}).items()]
    scope = {
        "type": "http", "asgi": {"version": "3.0"}, "http_version": "1.1", "method": "POST",
        "scheme": "http", "path": "/graphql", "raw_path": b"/graphql", "query_string": b"",
        "root_path": "", "client": ("127.0.0.1", 1), "server": ("127.0.0.1", 8000),
        "headers": [(b"content-type", b"application/json"),
                    (b"content-length", str(len(body)).encode()), *extra],
    }  # fmt: skip
    sent = False
    status = 0
    chunks: list[bytes] = []

    async def receive() -> dict[str, Any]:
        nonlocal sent
        if sent:
            await asyncio.sleep(3600)
        sent = True
        return {"type": "http.request", "body": body, "more_body": False}

    async def send(message: dict[str, Any]) -> None:
        nonlocal status
        if message["type"] == "http.response.start":
            status = message["status"]
        elif message["type"] == "http.response.body":
            chunks.append(message.get("body", b""))

    await app(scope, receive, send)
    return status, b"".join(chunks)
