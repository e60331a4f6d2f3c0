"""The ways there that issue 6 names, measured one at a time in every report.

Each way is two sides that differ in that way alone: one app answering two
forms of the same request (a persisted document's hash against its text), or
two apps built from the same settings but for the way (the response cache,
the parser and validation caches, orjson, the agency's keep-alive pool). The
sides are measured in interleaved rounds, which goes first alternating, so
that the machine's drift (a third within minutes here) falls on both; the
figure is CPU per request (``time.process_time``: every thread of the
process, the data-access row's commit thread included), the median of the
rounds, and the way's worth is without / with. A way that works once per
process (the precompiled allow-list) is measured on first requests instead:
each round starts a new gateway on each side (``first_requests``).

In process, over ASGI (``bench/asgi.py``), for two reasons: the table's
throughput rows cannot separate a way from the HTTP server and the sockets
around it, and CPU time depends far less than latency on what else the
machine runs. The ways measured over HTTP instead, because they are the
server itself (uvloop and httptools), are rows of the table.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import statistics
import time
from collections.abc import AsyncIterator, Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import aiohttp
import orjson
import strawberry
from starlette.applications import Starlette
from starlette.routing import Route
from strawberry.extensions import SchemaExtension

from bench.asgi import call, in_process_settings
from bench.loadgen import graphql_body
from bench.scenarios import (
    CATALOG_ROW,
    FAN_OUT_KINDS,
    FAN_OUT_ROW,
    FORM,
    KINDS,
    LOOKUP_ROW,
    Scenario,
)
from connectors.base import BackendRequest, BackendResponse, Connector
from connectors.config import BackendEndpoint, Timeouts
from connectors.rest import RestConnector
from connectors.wire import Wire
from gateway.catalog.model import Agency
from gateway.persisted import DocumentStore, document_hash
from gateway.settings import Settings
from legacy.samples import CITIZENS, sample_form

ROUNDS = 7
Answer = tuple[int, bytes]  # status and body
# Twenty services with their names and whole form descriptions: ~17 KiB of
# answer, where encoding is much of the work (forty are over the cost limit).
FORMS_PAGE = """query Forms { services(first: 20) { edges { node { code kind name { mn en }
  form { fields { name type required pattern min max maxLength options { value } } } } } } }"""


@dataclass(frozen=True)
class Side:
    app: Any  # an ASGI app whose lifespan has started
    body: bytes
    headers: dict[str, str]


@dataclass(frozen=True)
class Way:
    name: str
    sent: str  # what each request asked
    with_us: tuple[float, ...]  # CPU µs per request with the way, one figure per round
    without_us: tuple[float, ...]
    errors: int  # answers that were not a 200 without GraphQL errors, both sides

    @property
    def with_median(self) -> float:
        return statistics.median(self.with_us)

    @property
    def without_median(self) -> float:
        return statistics.median(self.without_us)

    @property
    def ratio(self) -> float:
        """How many times the CPU per request without the way."""
        return self.without_median / self.with_median


def _good(status: int, body: bytes) -> bool:
    """A 200 without GraphQL errors."""
    return status == 200 and b'"errors"' not in body


def _check_alike(name: str, with_it: list[Answer], without: list[Answer]) -> None:
    """Refuse to measure a way on error answers, or on sides that answer
    differently: then they differ in more than the way."""
    for status, body in with_it + without:
        if not _good(status, body):
            raise RuntimeError(f"{name}: {status} {body[:300]!r}")
    if [orjson.loads(b) for _, b in with_it] != [orjson.loads(b) for _, b in without]:
        raise RuntimeError(f"{name}: the two sides answer differently: {with_it[0][1][:200]!r}")


async def _round(side: Side, requests: int) -> tuple[float, int]:
    errors = 0
    started = time.process_time()
    for _ in range(requests):
        status, body = await call(side.app, side.body, side.headers)
        if not _good(status, body):
            errors += 1
    return (time.process_time() - started) / requests * 1e6, errors


async def compare(
    name: str, sent: str, with_it: Side, without: Side, requests: int, rounds: int = ROUNDS
) -> Way:
    answers = [await call(side.app, side.body, side.headers) for side in (with_it, without)]
    _check_alike(name, [answers[0]], [answers[1]])
    errors = 0
    for side in (with_it, without):  # caches filled, pools opened, code paths warm
        errors += (await _round(side, min(requests, 50)))[1]
    figures: dict[bool, list[float]] = {True: [], False: []}
    for number in range(rounds):
        order = (True, False) if number % 2 == 0 else (False, True)
        for has_it in order:
            cost, failed = await _round(with_it if has_it else without, requests)
            figures[has_it].append(cost)
            errors += failed
    return Way(name, sent, tuple(figures[True]), tuple(figures[False]), errors)


async def first_requests(
    name: str,
    sent: str,
    start: Callable[[bool], contextlib.AbstractAsyncContextManager[Any]],
    warm_up: bytes,
    bodies: list[bytes],
    rounds: int = ROUNDS,
) -> Way:
    """A way that works once per process: each round starts a new gateway on
    each side (``start(True)`` with the way), sends ``warm_up``, then times
    the first request of each of ``bodies``; a side's figure is their mean CPU."""
    figures: dict[bool, list[float]] = {True: [], False: []}
    errors = 0
    for number in range(rounds):
        answers: dict[bool, list[Answer]] = {}
        for has_it in (True, False) if number % 2 == 0 else (False, True):
            async with start(has_it) as app:
                # Not timed: what any first request pays (strawberry's and
                # graphql-core's own first-use work), so that the rounds time
                # what each new document costs.
                answers[has_it] = [await call(app, warm_up)]
                started = time.process_time()
                answers[has_it] += [await call(app, body) for body in bodies]
                figures[has_it].append((time.process_time() - started) / len(bodies) * 1e6)
            errors += sum(not _good(*answer) for answer in answers[has_it])
        if number == 0:
            _check_alike(name, answers[True], answers[False])
    return Way(name, sent, tuple(figures[True]), tuple(figures[False]), errors)


@contextlib.asynccontextmanager
async def started_with_allowlist(settings: Settings, precompiled: bool) -> AsyncIterator[Starlette]:
    """A new gateway on ``settings`` (an allow-list), started with its
    documents precompiled or, as before ``schema/precompile.py``, not; the
    parser's cache, which is the process's, emptied first."""
    from gateway.app import create_app
    from schema import precompile
    from schema.document_cache import _parse

    _parse.cache_clear()
    app = create_app(settings)
    app.middleware_stack = app.build_middleware_stack()  # as a server's lifespan call does
    real = precompile.precompile_all
    skipped: list[Mapping[str, str]] = []

    async def skip(schema: strawberry.Schema, documents: Mapping[str, str]) -> list[str]:
        skipped.append(documents)
        return []

    if not precompiled:
        precompile.precompile_all = skip
    try:
        async with app.router.lifespan_context(app):
            yield app
    finally:
        precompile.precompile_all = real
    if not precompiled and len(skipped) != 1:  # else this side precompiled after all
        raise RuntimeError("the gateway's start-up no longer calls precompile_all")


def allowlist_of(var_dir: Path, bodies: list[bytes]) -> Path:
    path = var_dir / "ways-allowlist.json"
    queries = [orjson.loads(body)["query"] for body in bodies]
    path.write_bytes(orjson.dumps({document_hash(q): q for q in queries}))
    return path


def without_document_caches(settings: Settings) -> Starlette:
    """The gateway built without ``schema/document_cache.py``'s two extensions:
    every request parsed and validated again, as strawberry does by default."""
    import gateway.app

    built = gateway.app.schema_extensions
    dropped: list[object] = []

    def fewer(settings: Settings, documents: DocumentStore) -> list[Callable[[], SchemaExtension]]:
        extensions = built(settings, documents)
        kept = [e for e in extensions if getattr(e, "__module__", "") != "schema.document_cache"]
        dropped.extend(e for e in extensions if e not in kept)
        return kept

    gateway.app.schema_extensions = fewer
    try:
        app = gateway.app.create_app(settings)
    finally:
        gateway.app.schema_extensions = built
    if len(dropped) != 2:  # the parser's and the validator's; else this measures nothing
        raise RuntimeError(f"expected the two document caches, dropped {dropped}")
    return app


def with_stdlib_json(app: Starlette) -> Starlette:
    """``app`` with its GraphQL view reading and writing JSON through the
    standard library, as strawberry does by default, instead of orjson."""
    view: Any = next(
        r.endpoint for r in app.routes if isinstance(r, Route) and r.path == "/graphql"
    )
    view.decode_json = json.loads
    view.encode_json = json.dumps
    return app


class _ConnectionPerCall(Wire):
    """No keep-alive: each exchange opens a connection and closes it. Its
    session is the pooled one's but for the connector (bench code may reach
    into the wire; the product never needs an unpooled one)."""

    def _open(self) -> aiohttp.ClientSession:
        self._session = aiohttp.ClientSession(
            headers=self._headers,
            timeout=self._timeout,
            cookie_jar=aiohttp.DummyCookieJar(),
            connector=aiohttp.TCPConnector(force_close=True),
        )
        return self._session


class _UnpooledRest(RestConnector):
    def __init__(self, agency: Agency, endpoint: BackendEndpoint, timeouts: Timeouts) -> None:
        super().__init__(agency, endpoint, timeouts)
        pooled = self._wire
        self._wire = _ConnectionPerCall(agency.code, timeouts, pooled._headers)


def unpooled(settings: Settings, agency: str) -> dict[str, Connector]:
    """``agency``'s REST connector without its keep-alive pool."""
    from gateway.catalog.loader import load_catalog

    found = load_catalog(settings.catalog_dir).agency(agency)
    assert found is not None
    return {agency: _UnpooledRest(found, settings.backends[agency], settings.timeouts)}


class _OneAtATime(Connector):
    """An agency's connector with its batching hidden: not a
    ``BatchingConnector``, so each lookup is sent on its own."""

    def __init__(self, inner: Connector) -> None:
        self.inner = inner

    async def send(self, request: BackendRequest) -> BackendResponse:
        return await self.inner.send(request)

    async def aclose(self) -> None:
        await self.inner.aclose()


def one_at_a_time(settings: Settings, agency: str) -> dict[str, Connector]:
    """``agency``'s SQL connector, its lookups sent one by one."""
    from connectors.sql import SqlConnector
    from gateway.catalog.loader import load_catalog

    found = load_catalog(settings.catalog_dir).agency(agency)
    assert found is not None
    sql = SqlConnector(found, settings.backends[agency], settings.timeouts)
    return {agency: _OneAtATime(sql)}


async def _records_query(app: Any, code: str) -> bytes:
    """One query with a lookup of ``code`` for each sample citizen's record."""
    status, answer = await call(app, graphql_body(FORM, {"code": code}))
    if not _good(status, answer):
        raise RuntimeError(f"form of {code}: {answer[:300]!r}")
    fields = orjson.loads(answer)["data"]["service"]["form"]["fields"]
    variables: dict[str, object] = {"c": code}
    for i, citizen in enumerate(CITIZENS):
        variables[f"i{i}"] = sample_form(fields, citizen)
    query = (
        "query Records($c: ID!, "
        + ", ".join(f"$i{i}: JSON!" for i in range(len(CITIZENS)))
        + ") { "
        + " ".join(f"r{i}: lookup(serviceCode: $c, input: $i{i})" for i in range(len(CITIZENS)))
        + " }"
    )
    return graphql_body(query, variables)


async def _check_calls(
    app: Any, agency: str, body: bytes, headers: dict[str, str], expected: int
) -> None:
    """Refuse to measure batching that does not happen (or happens on the
    side without it): ``body`` must reach ``agency`` in ``expected`` calls."""
    stats = app.state.services.registry.connector(agency).stats
    before = len(stats.latencies_ms)  # a window of 256: far from full here
    status, answer = await call(app, body, headers)
    if not _good(status, answer):
        raise RuntimeError(f"{agency} lookups: {status} {answer[:300]!r}")
    made = len(stats.latencies_ms) - before
    if made != expected:
        raise RuntimeError(f"{agency} lookups: {made} calls to the agency, not {expected}")


def _persisted(body: bytes) -> tuple[bytes, bytes]:
    """The APQ registration of ``body``'s document (hash and text) and the
    request that sends its hash alone."""
    request = orjson.loads(body)
    query = request.pop("query")
    request["extensions"] = {"persistedQuery": {"version": 1, "sha256Hash": document_hash(query)}}
    return orjson.dumps({**request, "query": query}), orjson.dumps(request)


async def measure_ways(
    var_dir: Path, sim_base_port: int, plan: list[Scenario], requests: int, rounds: int = ROUNDS
) -> list[Way]:
    """Each way whose scenario is in ``plan``; ``requests`` per side and round
    (a fifth of it for a LOOKUP, which waits on its agency)."""
    from gateway.app import create_app

    by_name = {s.name: s for s in plan}

    def settings(**changes: Any) -> Settings:
        return in_process_settings(var_dir, sim_base_port, **changes)

    async with contextlib.AsyncExitStack() as stack:

        async def started(app: Starlette) -> Starlette:
            await stack.enter_async_context(app.router.lifespan_context(app))
            return app

        async def overridden(agencies: dict[str, Connector]) -> Starlette:
            """The plain gateway but for these agencies' connectors."""
            app = create_app(settings(response_cache_bytes=0), connector_overrides=agencies)
            return await started(app)

        plain = await started(create_app(settings(response_cache_bytes=0)))
        ways: list[Way] = []
        if CATALOG_ROW in by_name:
            catalog = by_name[CATALOG_ROW].body
            cached = await started(create_app(settings()))
            ways.append(await compare(
                "response cache of the public catalog", "the catalog query, anonymous",
                Side(cached, catalog, {}), Side(plain, catalog, {}), requests, rounds,
            ))  # fmt: skip
            reparsing = await started(without_document_caches(settings(response_cache_bytes=0)))
            ways.append(await compare(
                "parser and validation caches", "the catalog query, anonymous, no response cache",
                Side(plain, catalog, {}), Side(reparsing, catalog, {}), requests, rounds,
            ))  # fmt: skip
            forms = graphql_body(FORMS_PAGE)
            stdlib = await started(with_stdlib_json(create_app(settings(response_cache_bytes=0))))
            ways.append(await compare(
                "orjson (against the standard library's json)",
                "20 services with their form descriptions (~17 KiB), no response cache",
                Side(plain, forms, {}), Side(stdlib, forms, {}), requests, rounds,
            ))  # fmt: skip
            documents = [catalog, forms]
            warm_up = graphql_body('query WarmUp { agency(code: "URB") { code } }')
            listed = settings(
                response_cache_bytes=0, trusted_documents="allowlist",
                trusted_documents_file=allowlist_of(var_dir, [warm_up, *documents]),
            )  # fmt: skip
            ways.append(await first_requests(
                "precompiled allow-list (parsed and validated at start-up)",
                "the first request of each of 2 allow-listed documents (the catalog query, the "
                "forms page) in a newly started gateway, no response cache",
                lambda precompiled: started_with_allowlist(listed, precompiled),
                warm_up, documents, rounds,
            ))  # fmt: skip
        if LOOKUP_ROW in by_name:
            lookup = by_name[LOOKUP_ROW]
            code = orjson.loads(lookup.body)["variables"]["c"]
            form = graphql_body(FORM, {"code": code})
            register, by_hash = _persisted(form)
            status, answer = await call(plain, register)
            if not _good(status, answer):
                raise RuntimeError(f"APQ registration failed: {answer[:300]!r}")
            ways.append(await compare(
                "persisted documents (APQ: the hash alone, against the document's text)",
                "one service's form description, no response cache",
                Side(plain, by_hash, {}), Side(plain, form, {}), requests, rounds,
            ))  # fmt: skip
            agency = KINDS["REST"]
            per_call = await overridden(unpooled(settings(), agency))
            ways.append(await compare(
                f"keep-alive pool per agency (against a connection per call, {agency})",
                "a LOOKUP of one REST service, its data-access row included",
                Side(plain, lookup.body, lookup.headers),
                Side(per_call, lookup.body, lookup.headers),
                max(1, requests // 5), rounds,
            ))  # fmt: skip
        if FAN_OUT_ROW in by_name:
            fan_out = by_name[FAN_OUT_ROW]
            agency = KINDS["SQL"]
            records = await _records_query(
                plain, orjson.loads(fan_out.body)["variables"][f"c{FAN_OUT_KINDS.index('SQL')}"]
            )
            alone = await overridden(one_at_a_time(settings(), agency))
            for side, calls in ((plain, 1), (alone, len(CITIZENS))):
                await _check_calls(side, agency, records, fan_out.headers, calls)
            ways.append(await compare(
                f"DataLoader batching per agency (against one lookup at a time, {agency})",
                f"{len(CITIZENS)} LOOKUPs of one SQL service in one query (one statement "
                "against five), their data-access rows included",
                Side(plain, records, fan_out.headers), Side(alone, records, fan_out.headers),
                max(1, requests // 5), rounds,
            ))  # fmt: skip
    return ways


def ways_there(var_dir: Path, sim_base_port: int, plan: list[Scenario], requests: int) -> list[Way]:
    return asyncio.run(measure_ways(var_dir, sim_base_port, plan, requests))
