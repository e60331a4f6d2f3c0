"""The servers under test, each run alone in its own process on its own core:

- ``baseline``  raw Starlette: read a JSON body, answer JSON (the ceiling)
- ``direct``    Starlette calling one agency's connector (validation and
                mapping included, as the gateway does): the back end's own cost
- ``gateway``   the Khaalga app, configured from ``KHAALGA_*`` as ``khaalga serve`` is

``python -m bench.serve KIND PORT``
"""

from __future__ import annotations

import dataclasses
import os
import sys
from typing import Any

import orjson
import uvicorn
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from connectors.base import Action, BackendRequest, Connector
from connectors.kinds import connector_class
from connectors.mapping import to_backend
from gateway.catalog.loader import load_catalog
from gateway.catalog.validation import validate_form
from gateway.cli import SERVER_IO
from gateway.heap import settle_heap
from gateway.settings import Settings, from_env

ASYNCIO_IO: dict[str, Any] = {"loop": "asyncio", "http": "h11"}


def _json(body: Any) -> Response:
    return Response(orjson.dumps(body, default=str), media_type="application/json")


def baseline_app() -> Starlette:
    async def echo(request: Request) -> Response:
        body = orjson.loads(await request.body())
        return _json({"data": {"echo": len(body)}})

    return Starlette(routes=[Route("/json", echo, methods=["POST"])])


def direct_app(settings: Settings) -> Starlette:
    catalog = load_catalog(settings.catalog_dir)
    connectors: dict[str, Connector] = {}
    for agency in catalog.agencies:
        cls = connector_class(agency.backend.kind)
        connectors[agency.code] = cls(  # type: ignore[call-arg]
            agency, settings.backends[agency.code], settings.timeouts
        )

    async def direct(request: Request) -> Response:
        body = orjson.loads(await request.body())
        service = catalog.service(body["service"])
        assert service is not None
        payload = to_backend(service, validate_form(service, body["form"]))
        answer = await connectors[service.agency_code].send(
            BackendRequest(
                agency=service.agency_code,
                service_code=service.code,
                operation=service.binding.operation,
                action=Action.LOOKUP,
                payload=payload,
            )
        )
        return _json({"data": dict(answer.data)})

    return Starlette(routes=[Route("/direct", direct, methods=["POST"])])


def gateway_app(settings: Settings) -> Starlette:
    from gateway.app import create_app

    return create_app(settings)


def bench_settings() -> Settings:
    """``KHAALGA_*`` as set by ``bench.run``, with the simulators' endpoints."""
    from legacy.topology import default_ports, embedded_endpoints

    settings = from_env()
    catalog = load_catalog(settings.catalog_dir)
    workdir = settings.var_dir / "legacy"
    backends = embedded_endpoints(catalog, workdir, default_ports(catalog, _base_port()))
    return dataclasses.replace(settings, backends=backends)


def _base_port() -> int:
    return int(os.environ.get("BENCH_SIM_BASE_PORT", "8101"))


def main() -> None:
    kind, port = sys.argv[1], int(sys.argv[2])
    if kind == "baseline":
        app = baseline_app()
    elif kind == "direct":
        app = direct_app(bench_settings())
    else:
        app = gateway_app(bench_settings())
    settle_heap()  # as ``khaalga serve`` does, for every kind: only the app differs
    # The same server settings for all three, so only the app differs: those
    # of ``khaalga serve`` (uvloop, httptools), or the pure-Python asyncio
    # loop and h11 when the run measures what those two bring.
    io = ASYNCIO_IO if os.environ.get("BENCH_SERVER_IO") == "asyncio" else SERVER_IO
    uvicorn.run(app, host="127.0.0.1", port=port, log_level="warning", access_log=False, **io)


if __name__ == "__main__":
    main()
