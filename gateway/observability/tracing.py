"""OpenTelemetry: set-up from settings, HTTP client instrumentation (W3C
``traceparent`` to REST and SOAP back ends through aiohttp, and on the
gateway's own httpx fetches: WSDLs, OIDC keys) and spans for root resolvers.

Spans come from the global tracer provider, which is a no-op until
``setup_tracing`` installs one, so the cost with tracing off is a few
function calls per request. Nothing personal goes into a span: no query
text, no variables, and the query string of back-end URLs (REST LOOKUPs
carry register numbers there) is cut off by the request hook.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any, Literal

from graphql import GraphQLResolveInfo
from opentelemetry import trace
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor, ConsoleSpanExporter, SpanExporter
from strawberry.extensions import SchemaExtension
from yarl import URL

Exporter = Literal["none", "console", "otlp"]
EXPORTERS: tuple[Exporter, ...] = ("none", "console", "otlp")

_URL_ATTRIBUTES = ("url.full", "http.url")
_state = {"clients": False}


def tracer() -> trace.Tracer:
    return trace.get_tracer("khaalga")


def _exporter(kind: Exporter) -> SpanExporter:
    if kind == "console":
        return ConsoleSpanExporter()
    # Imported only when chosen; configured by the standard
    # OTEL_EXPORTER_OTLP_* variables (endpoint, headers, timeout).
    from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter

    return OTLPSpanExporter()


def setup_tracing(kind: Exporter, service_name: str = "khaalga-gateway") -> bool:
    """Install a tracer provider exporting to ``kind``; False when tracing is off.

    Once per process: OpenTelemetry's global provider cannot be replaced, so a
    second app in the same process (tests) shares the first one's. The
    exporter is flushed at interpreter exit by the SDK's own atexit hook.
    """
    if kind == "none":
        return False
    # A provider already installed (an earlier app, or a test's in-memory
    # one) is kept: the global one cannot be replaced.
    if not isinstance(trace.get_tracer_provider(), TracerProvider):
        provider = TracerProvider(resource=Resource.create({"service.name": service_name}))
        provider.add_span_processor(BatchSpanProcessor(_exporter(kind)))
        trace.set_tracer_provider(provider)
    instrument_clients()
    return True


def _strip_query(span: trace.Span, request: Any) -> None:
    url = request.url.copy_with(query=None, fragment=None)
    for name in _URL_ATTRIBUTES:
        span.set_attribute(name, str(url))


async def _strip_query_async(span: trace.Span, request: Any) -> None:
    _strip_query(span, request)


def _without_query(url: URL) -> str:
    return str(url.with_query(None).with_fragment(None))


def instrument_clients() -> None:
    """Client spans and ``traceparent`` for every HTTP client, once per process."""
    if _state["clients"]:
        return
    from opentelemetry.instrumentation.aiohttp_client import AioHttpClientInstrumentor
    from opentelemetry.instrumentation.httpx import HTTPXClientInstrumentor

    AioHttpClientInstrumentor().instrument(url_filter=_without_query)
    HTTPXClientInstrumentor().instrument(
        request_hook=_strip_query, async_request_hook=_strip_query_async
    )
    _state["clients"] = True


class ResolverTracing(SchemaExtension):
    """One span per root field, so a trace reads request → field → back end.

    Added to the schema only when tracing is on: a ``resolve`` hook makes
    graphql-core call it for every field of every object, which costs even
    when the body returns at once.
    """

    def resolve(
        self,
        _next: Callable[..., Any],
        root: Any,
        info: GraphQLResolveInfo[Any],
        *args: Any,
        **kwargs: Any,
    ) -> Any:
        if info.path.prev is not None:
            return _next(root, info, *args, **kwargs)
        span = tracer().start_span(
            f"graphql.resolve {info.field_name}", attributes={"graphql.field.name": info.field_name}
        )
        with trace.use_span(span, end_on_exit=False):
            result = _next(root, info, *args, **kwargs)
        if isinstance(result, Awaitable):
            return _finish(span, result)
        span.end()
        return result


async def _finish(span: trace.Span, result: Awaitable[Any]) -> Any:
    # An async resolver's body only runs when awaited, so the span must be
    # current here too, and ends when the awaited work does.
    with trace.use_span(span, end_on_exit=True):
        return await result
