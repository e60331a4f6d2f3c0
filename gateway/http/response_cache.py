"""Shared answers to operations that read only the public catalog.

Which operations qualify is decided on the parsed document by
``schema.public.catalog_only`` (an allow-list of catalog root fields), so an
operation touching anything else -- ``me``, applications, lookups -- is never
stored nor served from here, whoever asks. A qualifying operation's answer
is the same for every principal (the catalog fields are Public and read
nothing about the caller), so one entry serves anonymous and authenticated
callers alike.

Key: method, negotiated response media type, SHA-256 of the document,
operation name, and the variables and extensions in canonical JSON (sorted
keys). Stored: the view's own answer (status, content type, body) to a
request that executed without any error. Rate-limit headers are not part of
it: the rate-limit middleware runs before the view on every request, hit or
not, and a hit is still charged the operation's cost to the caller's cost
budget. Bounded in bytes (LRU); emptied when the catalog object changes
(a reload) or on ``invalidate()``.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

import orjson
from cachetools import LRUCache
from graphql import DocumentNode, get_operation_ast, parse
from starlette.datastructures import QueryParams
from starlette.requests import Request
from starlette.responses import Response
from starlette.types import Receive, Scope, Send

from gateway.http.media import JSON
from schema.public import catalog_only_query

DEFAULT_MAX_BYTES = 32 * 2**20
# Request bodies whose decision is remembered, each at most REMEMBERED_BODY
# bytes (a decision holds the document and variables: at most ~8 MiB in all).
DECISIONS = 2048
REMEMBERED_BODY = 4096
# A stored entry's fixed overhead besides its body, for the byte bound.
_ENTRY_OVERHEAD = 256

CostOf = Callable[[DocumentNode, str | None, Mapping[str, Any]], int]


@dataclass(frozen=True, slots=True)
class CachedAnswer:
    """A stored answer, itself the ASGI app that sends it: its headers are
    made once, where a Starlette ``Response`` per hit rebuilt them each time."""

    body: bytes
    status: int
    headers: tuple[tuple[bytes, bytes], ...]
    operation_name: str | None
    cost: int  # what the operation costs a caller's cost budget on every hit

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        # A list of its own for each answer: outer middleware add headers to it.
        start = {"type": "http.response.start", "status": self.status, "headers": [*self.headers]}
        await send(start)
        await send({"type": "http.response.body", "body": self.body})


@dataclass(frozen=True, slots=True)
class Cacheable:
    """A request whose operation is catalog-only, and its key."""

    key: bytes
    query: str
    operation_name: str | None
    variables: Mapping[str, Any]


class ResponseCache:
    def __init__(
        self,
        generation: Callable[[], object],
        cost_of: CostOf,
        *,
        max_bytes: int = DEFAULT_MAX_BYTES,
        max_document_bytes: int = 16_384,
        observe: Callable[[str], None] | None = None,
    ) -> None:
        """``generation`` returns the catalog in force; when it is another
        object than the entries were made from, they are all dropped.
        ``observe`` is told ``"hit"`` or ``"miss"`` for each catalog-only request."""
        self._generation = generation
        self._made_from = generation()
        self._cost_of = cost_of
        self._max_entry = max_bytes // 4
        self._max_document = max_document_bytes
        self._observe = observe
        self._entries: LRUCache[bytes, CachedAnswer] = LRUCache(
            max_bytes, getsizeof=lambda answer: len(answer.body) + _ENTRY_OVERHEAD
        )
        # Request body digest -> its decision (None: not catalog-only).
        self._decisions: LRUCache[bytes, Cacheable | None] = LRUCache(DECISIONS)

    def __len__(self) -> int:
        return len(self._entries)

    def invalidate(self) -> None:
        self._entries.clear()
        self._made_from = self._generation()

    async def cacheable(self, request: Request, media: str) -> Cacheable | None:
        """The request's key if its operation is catalog-only; None for
        anything else, including a malformed request (the normal path answers
        it). ``request`` is a GET or a POST: the view answers 405 to the rest."""
        if request.method == "GET":
            return self.queried(media, request.query_params)
        # Starlette keeps the body on the request, so the view reads it again for free.
        return self.posted(media, await request.body())

    def queried(self, media: str, params: QueryParams) -> Cacheable | None:
        """``cacheable`` for a GET with these query parameters."""
        data: dict[str, Any] = {"query": params.get("query")}
        if params.get("operationName"):
            data["operationName"] = params["operationName"]
        for name in ("variables", "extensions"):
            if params.get(name):
                try:
                    data[name] = orjson.loads(params[name])
                except orjson.JSONDecodeError:
                    return None
        return self._decide("GET", media, data)

    def posted(self, media: str, body: bytes) -> Cacheable | None:
        """``cacheable`` for a POST with this body."""
        # Clients send the same bytes again and again: the decision made on a
        # body is remembered by the body's digest, so a repeat skips the JSON
        # parse, the document check and the canonical key (a third of a hit).
        if len(body) > REMEMBERED_BODY:
            return self._decide("POST", media, _json_object(body))
        raw = hashlib.sha256(b"%b\0%b" % (media.encode(), body)).digest()
        if raw in self._decisions:
            return self._decisions[raw]
        decision = self._decide("POST", media, _json_object(body))
        self._decisions[raw] = decision
        return decision

    def _decide(self, method: str, media: str, data: dict[str, Any] | None) -> Cacheable | None:
        if data is None:
            return None
        query, name = data.get("query"), data.get("operationName")
        variables, extensions = data.get("variables"), data.get("extensions")
        if not isinstance(query, str) or len(query) > self._max_document:
            return None  # a persisted query's hash alone, or a document over the limit
        if not isinstance(name, (str, type(None))):
            return None
        # Exactly what the view accepts (an object or null), so that a request
        # it refuses with 400 is refused here too and never served a hit.
        if not isinstance(variables, (dict, type(None))):
            return None
        if not isinstance(extensions, (dict, type(None))):
            return None
        variables, extensions = variables or {}, extensions or {}
        if not catalog_only_query(query, name):
            return None
        document = hashlib.sha256(query.encode()).hexdigest()
        try:
            canonical = orjson.dumps(
                [method, media, document, name, variables, extensions],
                option=orjson.OPT_SORT_KEYS,
            )
        except TypeError:
            return None
        return Cacheable(hashlib.sha256(canonical).digest(), query, name, variables)

    def get(self, request: Cacheable) -> CachedAnswer | None:
        answer = self.peek(request)
        self.count(answer)
        return answer

    def peek(self, request: Cacheable) -> CachedAnswer | None:
        """The stored answer, not yet counted as a lookup: the fast path looks
        before the request budget is counted, and a refused request looked up nothing."""
        if self._generation() is not self._made_from:
            self.invalidate()
        return self._entries.get(request.key)

    def count(self, answer: CachedAnswer | None) -> None:
        """Tell ``observe`` that a lookup found ``answer`` (a hit) or nothing."""
        if self._observe is not None:
            self._observe("hit" if answer is not None else "miss")

    def put(self, request: Cacheable, response: Response) -> None:
        """Keep ``response`` (an error-free 200 to ``request``)."""
        body = bytes(response.body)
        if len(body) > self._max_entry:
            return
        document = parse(request.query)
        operation = get_operation_ast(document, request.operation_name)
        # The name the operation is logged and counted under, as on a miss:
        # the document's own when the request did not name one.
        name = operation.name.value if operation and operation.name else request.operation_name
        self._entries[request.key] = CachedAnswer(
            body=body,
            status=response.status_code,
            headers=(
                (b"content-type", response.headers.get("content-type", JSON).encode("latin-1")),
                (b"content-length", str(len(body)).encode()),
            ),
            operation_name=name,
            cost=self._cost_of(document, request.operation_name, request.variables),
        )


def _json_object(body: bytes) -> dict[str, Any] | None:
    try:
        parsed = orjson.loads(body)
    except orjson.JSONDecodeError:
        return None
    return parsed if isinstance(parsed, dict) else None
