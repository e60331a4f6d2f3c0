"""Cached public answers served in front of the whole app.

Why: issue 6 wants the public catalog query at 70% of a bare Starlette
endpoint's throughput on the same core. Answered from the response cache, it
still went through ten layers -- Starlette's error middleware, the
observability, body-limit, content-type, auth and rate-limit middleware,
Starlette's exception middleware, router and route, the view -- each with
its own ``send`` wrapper, header parsing or scope work: 45 µs of CPU per
request in process (``bench/asgi.py``'s ``call``, rate limits off as in
the bench; 89 µs with an anonymous request budget). Answered here it costs
23 µs (65 µs with the budget: the ``limits`` library's counters are most of
it), a cheaper access log line (gateway/observability/logs.py) included;
the full path now costs 41 µs. uvicorn's ~30 µs comes on top of either.

What: a GET or POST to exactly the GraphQL path, without ``Authorization``
(a token, good or bad, goes the full way), within the body limit, with a JSON
body for a POST, whose answer the response cache already holds. Whether it
qualifies is decided by the functions the middleware and the view decide
with, on the same header lookups; then it goes through the same steps in
the same order -- the request id, the anonymous caller's request budget
(and its 429), the cache lookup counted as a hit, the cost charge, the
response headers, the metric observation and the access log line -- each by
the function the layer itself calls. Anything else is handed to the app
with the body messages already read replayed, so it sees the request as if
nothing had been in front.

Not done here: the server span (``gateway/app.py`` installs this only with
tracing off), and auth's request-id context variable, which only the
data-access log reads and a catalog answer writes none. An exception
escapes to the server rather than to Starlette's error middleware: the same
500 "Internal Server Error" either way, and the request is still recorded
with status 500 as the observability middleware records it.
"""

from __future__ import annotations

import time

from starlette.datastructures import QueryParams
from starlette.responses import Response
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from auth.middleware import authorization
from auth.principal import ANONYMOUS
from gateway.http.body_limit import length_refusal, receive_body, replay
from gateway.http.content_type import content_type, is_json
from gateway.http.media import negotiate
from gateway.http.response_cache import CachedAnswer, ResponseCache
from gateway.http.view import serve
from gateway.observability import request
from gateway.observability.middleware import RequestRecorder, id_header
from gateway.rate_limit import RateLimiter, admit, request_budget


class PublicAnswers:
    def __init__(
        self,
        app: ASGIApp,
        *,
        cache: ResponseCache,
        recorder: RequestRecorder,
        limiter: RateLimiter,
        max_body_bytes: int,
        path: str = "/graphql",
    ) -> None:
        self.app = app
        self.cache = cache
        self.recorder = recorder
        self.limiter = limiter
        self.max_body_bytes = max_body_bytes
        self.path = path

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        started = time.perf_counter()  # as the observability middleware times it: body included
        media = self._media(scope)
        if media is None:
            await self.app(scope, receive, send)
            return
        messages, body = await receive_body(receive, self.max_body_bytes)
        answer = self._stored(scope, media, body) if body is not None else None
        if answer is None:
            await self.app(scope, replay(messages, receive), send)
            return
        await self._answer(scope, receive, send, answer, started)

    def _media(self, scope: Scope) -> str | None:
        """The response media type, if the layers before the view let this
        request through untouched; None when any of them decides something."""
        # The router matches below a root path; the middleware on the path itself.
        if scope["type"] != "http" or scope["path"] != self.path or scope.get("root_path"):
            return None
        method = scope["method"]
        if method not in ("GET", "POST"):
            return None
        headers = dict(scope["headers"])  # as each middleware reads them: the last one counts
        if authorization(headers):
            return None
        if method == "POST" and not is_json(content_type(headers)):
            return None
        if length_refusal(headers, self.max_body_bytes) is not None:
            return None
        # As the view reads it (Starlette's Headers: the first one counts).
        accept = next((value for name, value in scope["headers"] if name == b"accept"), None)
        return negotiate(accept.decode("latin-1") if accept is not None else None)

    def _stored(self, scope: Scope, media: str, body: bytes) -> CachedAnswer | None:
        if scope["method"] == "POST":
            decision = self.cache.posted(media, body)
        else:
            decision = self.cache.queried(media, QueryParams(scope["query_string"]))
        return self.cache.peek(decision) if decision is not None else None

    async def _answer(
        self, scope: Scope, receive: Receive, send: Send, answer: CachedAnswer, started: float
    ) -> None:
        info = self.recorder.begin(scope)
        scope["principal"] = ANONYMOUS
        budget = request_budget(self.limiter, scope)
        status = 500  # what is recorded if something raises before answering

        async def send_with_headers(message: Message) -> None:
            nonlocal status
            # The rate-limit middleware's headers, then the observability middleware's.
            if message["type"] == "http.response.start":
                status = message["status"]
                message["headers"] = [*message["headers"], *budget.headers(), id_header(info)]
            await send(message)

        token = request.begin(info)
        try:
            response: Response | CachedAnswer | None = await admit(budget, scope)
            if response is None:
                self.cache.count(answer)
                response = await serve(scope, answer)
            await response(scope, receive, send_with_headers)
        finally:
            seconds = time.perf_counter() - started
            request.end(token)
            self.recorder.finish(scope, info, self.recorder.path(scope), status, seconds, None)
