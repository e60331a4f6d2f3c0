"""Traces: server span → root resolver → connector → HTTP client span, and
the W3C ``traceparent`` arriving at the REST simulator."""

from __future__ import annotations

import dataclasses
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import httpx
import pytest
from opentelemetry import trace
from opentelemetry.instrumentation.utils import suppress_http_instrumentation
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from starlette.types import ASGIApp, Receive, Scope, Send

from connectors.base import Action, BackendRequest, BackendResponse, Connector
from connectors.resilience import ResilientConnector, breaker_factory
from gateway.app import create_app
from gateway.catalog.loader import Catalog
from gateway.catalog.model import ServiceKind
from gateway.db.migrate import upgrade_async
from gateway.settings import ROOT, Settings
from legacy.rest import RestSimulator
from legacy.samples import sample_form
from legacy.topology import build_simulators, embedded_endpoints
from tests.observability.conftest import ALICE, FORM, LOOKUP, first_service
from tests.support.gateway import Api, citizen_token, free_port, served

pytestmark = pytest.mark.slow
EXPORTER = InMemorySpanExporter()


@pytest.fixture(scope="module")
def provider() -> None:
    # The global provider can be set once per process; every app after this
    # one shares it (setup_tracing keeps a provider it finds installed).
    if not isinstance(trace.get_tracer_provider(), TracerProvider):
        sdk = TracerProvider()
        sdk.add_span_processor(SimpleSpanProcessor(EXPORTER))
        trace.set_tracer_provider(sdk)


@pytest.fixture
def spans(provider: None) -> Iterator[InMemorySpanExporter]:
    EXPORTER.clear()
    yield EXPORTER
    EXPORTER.clear()


class HeaderCapture:
    """Records each request's headers, then lets the simulator answer as ever."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app
        self.seen: list[dict[str, str]] = []

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http":
            self.seen.append({k.decode(): v.decode() for k, v in scope["headers"]})
        await self.app(scope, receive, send)


@dataclasses.dataclass
class Traced:
    api: Api
    captured: HeaderCapture


@pytest.fixture
async def traced(
    tmp_path: Path, catalog: Catalog, spans: InMemorySpanExporter
) -> AsyncIterator[Traced]:
    ports = [free_port() for _ in catalog.agencies]
    workdir = tmp_path / "legacy"
    simulators = {s.agency.code: s for s in build_simulators(catalog, workdir, ports)}
    rest = simulators["URB"]
    assert isinstance(rest, RestSimulator)
    captured = HeaderCapture(rest.app)
    rest.app = captured  # type: ignore[assignment]
    started = [simulators["URB"], simulators["TAX"]]  # one REST, one SOAP agency
    for simulator in started:
        await simulator.start()
    settings = Settings(
        var_dir=tmp_path, catalog_dir=ROOT / "catalog", worker=False, otel_exporter="console",
        backends=embedded_endpoints(catalog, workdir, ports),
    )  # fmt: skip
    await upgrade_async(settings.database_url)
    try:
        async with (
            served(create_app(settings)) as base_url,
            httpx.AsyncClient(base_url=base_url, timeout=30) as http,
        ):
            yield Traced(Api(http, citizen_token(settings, ALICE)), captured)
    finally:
        for simulator in started:
            await simulator.stop()


def by_name(spans: tuple[ReadableSpan, ...], prefix: str) -> list[ReadableSpan]:
    return [s for s in spans if s.name.startswith(prefix)]


def parent_of(span: ReadableSpan, spans: tuple[ReadableSpan, ...]) -> ReadableSpan:
    assert span.parent is not None, span.name
    [parent] = [s for s in spans if s.context.span_id == span.parent.span_id]
    return parent


async def test_a_lookup_is_one_trace_down_to_the_agency(
    traced: Traced, catalog: Catalog, spans: InMemorySpanExporter
) -> None:
    code = first_service(catalog, ServiceKind.LOOKUP, "URB")
    fields = (await traced.api.data(FORM, {"code": code}))["service"]["form"]["fields"]

    spans.clear()
    traced.captured.seen.clear()
    with suppress_http_instrumentation():  # the test's own client is not traced
        await traced.api.data(LOOKUP, {"c": code, "i": sample_form(fields, ALICE)})

    finished = spans.get_finished_spans()
    [server] = [s for s in finished if s.kind is trace.SpanKind.SERVER]
    assert server.name == "POST /graphql"
    assert server.attributes is not None
    assert server.attributes["graphql.operation.name"] == "Look"
    [resolver] = by_name(finished, "graphql.resolve lookup")
    [connector] = by_name(finished, "URB LOOKUP")
    [client] = [s for s in finished if s.kind is trace.SpanKind.CLIENT]
    assert parent_of(client, finished) is connector
    assert parent_of(connector, finished) is resolver
    assert parent_of(resolver, finished) is server
    assert len({s.context.trace_id for s in finished}) == 1

    # The back end got the client span's context, W3C style.
    [headers] = traced.captured.seen
    version, trace_id, span_id, _ = headers["traceparent"].split("-")
    assert version == "00"
    assert int(trace_id, 16) == server.context.trace_id
    assert int(span_id, 16) == client.context.span_id
    # The REST query string carries the register number; the span must not.
    assert client.attributes is not None
    assert all(ALICE not in str(v) and "?" not in str(v) for v in client.attributes.values())


async def test_a_soap_call_gets_a_client_span_too(
    traced: Traced, catalog: Catalog, spans: InMemorySpanExporter
) -> None:
    code = first_service(catalog, ServiceKind.LOOKUP, "TAX")
    fields = (await traced.api.data(FORM, {"code": code}))["service"]["form"]["fields"]

    spans.clear()
    with suppress_http_instrumentation():
        await traced.api.data(LOOKUP, {"c": code, "i": sample_form(fields, ALICE)})
    finished = spans.get_finished_spans()
    [connector] = by_name(finished, "TAX LOOKUP")
    clients = [s for s in finished if s.kind is trace.SpanKind.CLIENT]
    # zeep posts the envelope through the connector's wire (aiohttp), whose
    # instrumentation injects traceparent into every request it makes a span for.
    assert clients and all(parent_of(c, finished) is connector for c in clients)


async def test_an_incoming_traceparent_is_continued(
    traced: Traced, spans: InMemorySpanExporter
) -> None:
    trace_id = "4bf92f3577b34da6a3ce929d0e0e4736"
    with suppress_http_instrumentation():  # or the client would send its own traceparent
        response = await traced.api.http.post(
            "/graphql",
            json={"query": "{ agencies { code } }"},
            headers={"traceparent": f"00-{trace_id}-00f067aa0ba902b7-01"},
        )
    assert response.status_code == 200
    [server] = [s for s in spans.get_finished_spans() if s.kind is trace.SpanKind.SERVER]
    assert f"{server.context.trace_id:032x}" == trace_id


@pytest.mark.parametrize("traced", [True, False])
async def test_a_connector_opens_its_span_only_when_tracing_is_on(
    spans: InMemorySpanExporter, traced: bool
) -> None:
    # With tracing off (``KHAALGA_OTEL_EXPORTER=none``) the app sets ``traced``
    # False on every connector (gateway/observability/setup.py).
    connector = ResilientConnector(Answering(), "URB", breaker_factory(3, 1.0))
    connector.traced = traced
    request = BackendRequest("URB", "URB-001", "LOOK", Action.LOOKUP, payload={"q": 1})
    assert (await connector.send(request)).data == {"ok": True}
    assert [s.name for s in by_name(spans.get_finished_spans(), "URB")] == (
        ["URB LOOKUP"] if traced else []
    )


class Answering(Connector):
    async def send(self, request: BackendRequest) -> BackendResponse:
        return BackendResponse(data={"ok": True})
