"""Strawberry's ASGI view, made to follow the GraphQL-over-HTTP spec.

What strawberry does differently out of the box, and is changed here:
- it always answers ``application/json`` with 200; here the ``Accept`` header
  chooses ``application/graphql-response+json`` (and then a request error --
  parse, validation, variable coercion, operation limits -- is a 400), or
  ``application/json`` (always 200), or nothing (406);
- a request error keeps ``"data": null``; the spec wants no ``data`` entry;
- mutations over GET are a 400; the spec wants 405 with ``Allow: POST``;
- a JSON body that is not an object, or an ``operationName`` that is not a
  string, crashes or runs; here they are a 400;
- transport errors are plain text; here they are RFC 9457 problems;
- a JSON array (a batch) is refused: Khaalga does not batch operations, so
  one request cannot multiply limits and rate limits by N.
Streaming (SSE, multipart subscriptions) is not offered: the schema has no
subscriptions and ``@defer``/``@stream`` are off.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any, TypeVar

import orjson
from cross_web import AsyncHTTPRequestAdapter, HTTPException
from graphql import GraphQLError
from starlette.requests import Request
from starlette.responses import Response
from starlette.types import Receive, Scope, Send
from strawberry.asgi import GraphQL
from strawberry.exceptions import MissingQueryError
from strawberry.http import GraphQLHTTPResponse, GraphQLRequestData
from strawberry.http.base import BaseRequestProtocol
from strawberry.schema.exceptions import CannotGetOperationTypeError, InvalidOperationTypeError
from strawberry.types import ExecutionResult
from strawberry.types.graphql import OperationType

from gateway.http.media import GRAPHQL_RESPONSE, negotiate
from gateway.http.problem import problem
from gateway.http.response_cache import CachedAnswer, ResponseCache
from gateway.observability.request import current, operation_label
from gateway.rate_limit import BUDGET, RequestBudget, too_many

ContextT = TypeVar("ContextT")
RootValueT = TypeVar("RootValueT")


class TransportError(HTTPException):
    """An HTTPException that also carries response headers (``Allow``...)."""

    def __init__(self, status: int, detail: str, headers: Mapping[str, str] | None = None):
        super().__init__(status, detail)
        self.headers = dict(headers or {})


def is_request_error(result: ExecutionResult) -> bool:
    """Nothing executed: every error is about the request, none has a path."""
    return (
        result.data is None
        and bool(result.errors)
        and all(error.path is None for error in result.errors or ())
    )


class SpecGraphQL(GraphQL[ContextT, RootValueT]):
    # Answers to catalog-only operations, shared by every caller (None: off).
    response_cache: ResponseCache | None = None

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await super().__call__(scope, receive, send)
            return
        request = Request(scope, receive)
        try:
            response = await self._respond(request)
        except HTTPException as exc:
            response = problem(exc.status_code, exc.reason, getattr(exc, "headers", None))
        await response(scope, receive, send)

    async def _respond(self, request: Request) -> Response | CachedAnswer:
        if request.method not in ("GET", "POST"):
            raise TransportError(405, "GraphQL is served over GET and POST", {"allow": "GET, POST"})
        media = negotiate(request.headers.get("accept"))
        if media is None and not self.should_render_graphql_ide(
            self.request_adapter_class(request)
        ):
            detail = f"responses are application/json or {GRAPHQL_RESPONSE}; Accept allows neither"
            raise TransportError(406, detail)
        cacheable = None
        if self.response_cache is not None and media is not None:
            cacheable = await self.response_cache.cacheable(request, media)
            answer = self.response_cache.get(cacheable) if cacheable is not None else None
            if answer is not None:
                return await serve(request.scope, answer)
        response = await self.run(request)
        # The cost budget refused the operation during execution (nothing ran):
        # a transport answer, like the request budget's own 429.
        if (refused := too_many(request.scope)) is not None:
            return refused
        if media == GRAPHQL_RESPONSE and getattr(request.state, "graphql_response", False):
            response.headers["content-type"] = f"{GRAPHQL_RESPONSE}; charset=utf-8"
            if getattr(request.state, "graphql_request_error", False):
                response.status_code = 400
        if (
            cacheable is not None
            and self.response_cache is not None
            and response.status_code == 200
            and getattr(request.state, "graphql_errors", True) is False
        ):
            self.response_cache.put(cacheable, response)
        return response

    def should_render_graphql_ide(self, request: BaseRequestProtocol) -> bool:
        # Only a browser asking for a page; ``*/*`` alone (curl, fetch) or a
        # persisted-query GET (no ``query``, but ``extensions``) is an API call.
        params = request.query_params
        return (
            request.method == "GET"
            and params.get("query") is None
            and params.get("extensions") is None
            and "text/html" in request.headers.get("accept", "")
        )

    async def parse_http_body(self, request: AsyncHTTPRequestAdapter) -> GraphQLRequestData:
        if request.method == "GET":
            data: Any = self.parse_query_params(request.query_params)
            # An empty ``variables=`` or ``extensions=`` in a URL means absent.
            data = {key: value for key, value in data.items() if value != ""}
        else:  # the middleware let only application/json through
            body = await request.get_body()
            if not body.strip():
                raise TransportError(400, "the request body is empty; send a JSON object")
            data = self.parse_json(body)
        if isinstance(data, list):
            raise TransportError(
                400, "batched operations are not supported: send one operation per request"
            )
        if not isinstance(data, dict):
            raise TransportError(400, "the request body must be a JSON object")
        for name, kind in (("query", str), ("operationName", str)):
            if not isinstance(data.get(name), (kind, type(None))):
                raise TransportError(400, f"'{name}' must be a string or null")
        for name in ("variables", "extensions"):
            if not isinstance(data.get(name), (dict, type(None))):
                raise TransportError(400, f"'{name}' must be a JSON object or null")
        return GraphQLRequestData(
            query=data.get("query"),
            variables=data.get("variables"),
            operation_name=data.get("operationName"),
            extensions=data.get("extensions"),
        )

    async def execute_single(
        self,
        request: Request,
        request_adapter: AsyncHTTPRequestAdapter,
        sub_response: Response,
        context: ContextT,
        root_value: RootValueT | None,
        request_data: GraphQLRequestData,
    ) -> ExecutionResult:
        method = request_adapter.method
        try:
            return await self.schema.execute(
                request_data.query,
                root_value=root_value,
                variable_values=request_data.variables,
                context_value=context,
                operation_name=request_data.operation_name,
                allowed_operation_types=OperationType.from_http(method),
                operation_extensions=request_data.extensions,
            )
        except InvalidOperationTypeError as exc:
            detail = exc.as_http_error_reason(method)
            if method == "GET":
                raise TransportError(405, detail, {"allow": "POST"}) from exc
            raise TransportError(400, detail) from exc
        except CannotGetOperationTypeError as exc:
            # A GraphQL request error (no such operation), not a transport one.
            return ExecutionResult(data=None, errors=[GraphQLError(exc.as_http_error_reason())])
        except MissingQueryError as exc:
            raise TransportError(
                400, "no GraphQL document: send 'query' (or a persisted query's hash)"
            ) from exc

    async def process_result(
        self, request: Request, result: ExecutionResult
    ) -> GraphQLHTTPResponse:
        data = await super().process_result(request, result)
        request.state.graphql_response = True
        request.state.graphql_errors = bool(result.errors)
        if is_request_error(result):
            data.pop("data", None)
            request.state.graphql_request_error = True
        return data

    def decode_json(self, data: str | bytes) -> object:
        # orjson's error is a json.JSONDecodeError, so strawberry's 400 still applies.
        return orjson.loads(data)

    def encode_json(self, data: object) -> str | bytes:
        # The whole catalog's answer (61 KiB): 0.12 ms against json.dumps' 1.5 ms.
        # What orjson refuses (integers beyond 64 bits from a JSON scalar) takes
        # the old path.
        try:
            return orjson.dumps(data, option=orjson.OPT_NON_STR_KEYS)
        except orjson.JSONEncodeError:
            return json.dumps(data, separators=(",", ":"))


async def serve(scope: Scope, answer: CachedAnswer) -> Response | CachedAnswer:
    """A stored answer, charged to the caller's cost budget as the operation
    would have been, and recorded for metrics and the access log like one.
    The fast path in front of the app (gateway/http/public_answer.py) serves
    its hits through here too."""
    budget = scope.get(BUDGET)
    if isinstance(budget, RequestBudget) and not await budget.charge(answer.cost):
        refused = too_many(scope)
        if refused is not None:
            return refused
    info = current()
    if info is not None:
        info.operation = operation_label(answer.operation_name)
        info.operation_type = "query"
        info.outcome = "ok"
    return answer
