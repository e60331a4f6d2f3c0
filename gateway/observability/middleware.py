"""The ASGI middleware around everything else: a request id (the client's
``X-Request-Id`` if it is a plain token, else ours) echoed in the response,
a server span continuing the caller's W3C trace, and on the way out one
metric observation and one log line.

Plain ASGI rather than Starlette's ``BaseHTTPMiddleware``: that one runs the
app in another task and buffers streaming bodies.

The per-request work besides the span is ``RequestRecorder``'s, which the
fast path in front of the app (gateway/http/public_answer.py) shares.
"""

from __future__ import annotations

import time
from collections.abc import Collection

from opentelemetry import propagate, trace
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from gateway.observability import request
from gateway.observability.logs import access_fields, log_request
from gateway.observability.metrics import GatewayMetrics
from gateway.observability.request import RequestInfo
from gateway.observability.tracing import tracer
from gateway.rate_limit import BUDGET, RequestBudget

REQUEST_ID = b"x-request-id"
OTHER_PATH = "other"


def id_header(info: RequestInfo) -> tuple[bytes, bytes]:
    """The response header echoing the request id."""
    return REQUEST_ID, info.request_id.encode()


class RequestRecorder:
    """A request's id on the way in; its metric observation and log line on
    the way out."""

    def __init__(
        self, metrics: GatewayMetrics, paths: Collection[str], graphql_path: str = "/graphql"
    ) -> None:
        self.metrics = metrics
        # Only known route paths are recorded: any other path is whatever a
        # client typed, so it is neither bounded nor known to be impersonal.
        self.paths = frozenset(paths)
        self.graphql_path = graphql_path

    def begin(self, scope: Scope) -> RequestInfo:
        given = next((v for k, v in scope["headers"] if k == REQUEST_ID), b"").decode("latin-1")
        acceptable = request.acceptable_request_id(given)
        info = RequestInfo(given if acceptable else request.new_request_id())
        # auth.middleware takes the id from here for the data-access log, so
        # both logs name a request the same way.
        scope["request_id"] = info.request_id
        return info

    def path(self, scope: Scope) -> str:
        path: str = scope["path"]
        return path if path in self.paths else OTHER_PATH

    def finish(
        self, scope: Scope, info: RequestInfo, path: str, status: int, seconds: float,
        span: trace.Span | None,
    ) -> None:  # fmt: skip
        principal = scope.get("principal")
        kind = principal.kind.value if principal is not None else "NONE"  # refused by auth
        if path == self.graphql_path:
            if info.outcome == "none" and status >= 400:
                info.outcome = "rejected"  # refused before any GraphQL ran (auth, HTTP)
            if info.outcome != "none":  # "none" with 2xx is the GraphiQL page
                self.metrics.observe_request(info, seconds)
            if span is not None:
                span.set_attribute("graphql.operation.name", info.operation)
                span.set_attribute("graphql.operation.type", info.operation_type)
        if status == 429:
            budget = scope.get(BUDGET)
            refused = budget.refused if isinstance(budget, RequestBudget) else None
            self.metrics.rate_limited.labels(refused.policy.name if refused else "other").inc()
        if span is not None:
            span.set_attribute("http.response.status_code", status)
            if status >= 500:
                span.set_status(trace.StatusCode.ERROR)
            span.end()
        log_request(access_fields(info, scope["method"], path, status, kind, seconds))


class ObservabilityMiddleware:
    def __init__(self, app: ASGIApp, recorder: RequestRecorder, tracing: bool = True) -> None:
        self.app = app
        self.recorder = recorder
        # Off (KHAALGA_OTEL_EXPORTER=none): no span, not even a no-op one --
        # extracting the W3C context and opening a span were a tenth of a
        # cached catalog request's CPU.
        self.tracing = tracing

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        info = self.recorder.begin(scope)
        path = self.recorder.path(scope)
        status = 500  # what the client gets if the app raises before answering

        async def send_with_id(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
                message["headers"] = [*message.get("headers", []), id_header(info)]
            await send(message)

        token = request.begin(info)
        started = time.perf_counter()
        span = self._span(scope, path) if self.tracing else None
        try:
            if span is None:
                await self.app(scope, receive, send_with_id)
            else:
                with trace.use_span(span, end_on_exit=False):
                    await self.app(scope, receive, send_with_id)
        finally:
            seconds = time.perf_counter() - started
            request.end(token)
            self.recorder.finish(scope, info, path, status, seconds, span)

    def _span(self, scope: Scope, path: str) -> trace.Span:
        carrier = {k.decode("latin-1"): v.decode("latin-1") for k, v in scope["headers"]}
        return tracer().start_span(
            f"{scope['method']} {path}",
            context=propagate.extract(carrier),
            kind=trace.SpanKind.SERVER,
            attributes={"http.request.method": scope["method"], "url.path": path},
        )
