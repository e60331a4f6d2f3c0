"""Where the hot paths' time goes: pyinstrument around the app called directly
over ASGI (no sockets, no HTTP parser), so the profile is the gateway's own
work: middleware, strawberry, graphql-core, serialisation, and for a LOOKUP
the connector, the data-access log and the awaits on the back end.

Three paths: the catalog query with the response cache off (the GraphQL
pipeline itself; with the cache on there is almost nothing left to see), the
LOOKUP of one REST service and the fan-out to three agencies, against the
run's simulators."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from pyinstrument import Profiler

from bench.asgi import call, in_process_settings
from bench.scenarios import CATALOG_ROW, FAN_OUT_ROW, LOOKUP_ROW, Scenario

LINES = 100  # of each profile's text tree


async def _profile(app: Any, scenario: Scenario, requests: int) -> list[str]:
    for _ in range(min(200, requests)):  # warm-up
        await call(app, scenario.body, scenario.headers)
    # Awaits are not followed: time spent waiting on a back end shows as the
    # event loop's select, so the tree is the CPU of the request path.
    profiler = Profiler(interval=0.0005, async_mode="disabled")
    profiler.start()
    for _ in range(requests):
        await call(app, scenario.body, scenario.headers)
    profiler.stop()
    # Text only: pyinstrument's HTML for thousands of requests is tens of megabytes.
    text = profiler.output_text(unicode=False, color=False, show_all=False)
    head = f"--- {scenario.name}: {requests} requests, response cache off ---"
    return [head, *text.splitlines()[:LINES], ""]


async def _hot_paths(var_dir: Path, sim_base_port: int, plan: Sequence[Scenario]) -> list[str]:
    from gateway.app import create_app

    app = create_app(in_process_settings(var_dir, sim_base_port, response_cache_bytes=0))
    by_name = {s.name: s for s in plan}
    lines: list[str] = []
    async with app.router.lifespan_context(app):
        for name, requests in ((CATALOG_ROW, 2000), (LOOKUP_ROW, 300), (FAN_OUT_ROW, 300)):
            if name in by_name:
                lines += await _profile(app, by_name[name], requests)
    return lines


def profile_hot_paths(var_dir: Path, sim_base_port: int, plan: Sequence[Scenario]) -> list[str]:
    return asyncio.run(_hot_paths(var_dir, sim_base_port, plan))
