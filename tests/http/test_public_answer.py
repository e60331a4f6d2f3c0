"""The fast path in front of the app (gateway/http/public_answer.py): each
request sent to the gateway with it and without it gets the same status,
body and headers, and leaves the same metrics and access log line; and the
requests it should answer really are answered in front.

Requests are made over ASGI directly, the whole body in one message as
uvicorn hands over a small request (``chunks`` splits it as a streaming client
would)."""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import io
import logging
import re
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import orjson
import pytest
from starlette.applications import Starlette
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from gateway.app import create_app
from gateway.db.migrate import upgrade_async
from gateway.http.public_answer import PublicAnswers
from gateway.observability.logs import ACCESS, FIELDS, configure_logging
from gateway.observability.request import acceptable_request_id
from gateway.settings import Settings
from tests.http.conftest import settings_for
from tests.support.gateway import citizen_token

CATALOG = "query Catalog { agencies { code } }"
GRAPHQL_RESPONSE = "application/graphql-response+json"
CITIZEN = "УБ99010112"
TOKEN = "<a citizen's token>"  # replaced by a real one when sent
# Seconds left in a rate-limit window: they may tick between the two answers.
_SECONDS = re.compile(rb"(t=|retry in )\d+")


def body(query: str, **extra: object) -> bytes:
    return orjson.dumps({"query": query, **extra})


@dataclass(frozen=True)
class Req:
    body: bytes = body(CATALOG)
    headers: tuple[tuple[str, str], ...] = ()
    method: str = "POST"
    path: str = "/graphql"
    query_string: bytes = b""
    content_type: str | None = "application/json"
    length: bool = True  # send Content-Length
    chunks: int = 1


@dataclass
class Answer:
    status: int = 0
    headers: list[tuple[bytes, bytes]] = field(default_factory=list)
    body: bytes = b""


async def call(app: Starlette, req: Req, token: str = "") -> Answer:
    headers = [(b"content-type", req.content_type.encode())] if req.content_type else []
    if req.length:
        headers.append((b"content-length", str(len(req.body)).encode()))
    headers += [(k.encode(), v.replace(TOKEN, token).encode()) for k, v in req.headers]
    scope: Scope = {
        "type": "http", "asgi": {"version": "3.0"}, "http_version": "1.1",
        "method": req.method, "scheme": "http", "path": req.path, "raw_path": req.path.encode(),
        "query_string": req.query_string, "root_path": "", "headers": headers,
        "client": ("203.0.113.7", 5000), "server": ("khaalga.test", 80),
    }  # fmt: skip
    size = max(1, -(-len(req.body) // req.chunks))
    parts = [req.body[i : i + size] for i in range(0, len(req.body), size)] or [b""]
    messages: list[Message] = [
        {"type": "http.request", "body": part, "more_body": i < len(parts) - 1}
        for i, part in enumerate(parts)
    ]
    answered = asyncio.Event()
    answer = Answer()

    async def receive() -> Message:
        if messages:
            return messages.pop(0)
        await answered.wait()
        return {"type": "http.disconnect"}

    async def send(message: Message) -> None:
        if message["type"] == "http.response.start":
            answer.status, answer.headers = message["status"], list(message["headers"])
        else:
            answer.body += message.get("body", b"")
            if not message.get("more_body", False):
                answered.set()

    await app(scope, receive, send)
    return answer


class Counting:
    """The app behind the fast path, counting the requests it is handed."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app
        self.calls = 0

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        self.calls += 1
        await self.app(scope, receive, send)


@dataclass
class Pair:
    fast: Starlette
    full: Starlette
    behind: Counting  # what the fast app hands on
    token: str


@contextlib.asynccontextmanager
async def pair(settings: Settings) -> AsyncIterator[Pair]:
    """The gateway with the fast path and without it, on one database."""
    await upgrade_async(settings.database_url)
    fast, full = create_app(settings), create_app(settings, public_answers=False)
    front = fast.middleware_stack = fast.build_middleware_stack()
    assert isinstance(front, PublicAnswers)
    assert not isinstance(full.build_middleware_stack(), PublicAnswers)
    front.app = behind = Counting(front.app)
    async with fast.router.lifespan_context(fast), full.router.lifespan_context(full):
        yield Pair(fast, full, behind, citizen_token(settings, CITIZEN))


def comparable(answer: Answer, sent_id: bool) -> Answer:
    """What must be equal: all of it but a generated request id and the
    seconds a rate-limit window has left."""
    headers = []
    for name, value in answer.headers:
        if name == b"x-request-id" and not sent_id:
            assert re.fullmatch(rb"[0-9a-f]{32}", value)
            value = b"<generated>"
        if name == b"retry-after":
            value = b"<s>"
        headers.append((name, _SECONDS.sub(rb"\1<s>", value)))
    return Answer(answer.status, headers, _SECONDS.sub(rb"\1<s>", answer.body))


def access_line(caplog: pytest.LogCaptureFixture) -> dict[str, Any]:
    [record] = [r for r in caplog.records if r.name == "khaalga.access"]
    line: dict[str, Any] = getattr(record, FIELDS)
    caplog.clear()
    return line


def counted(app: Starlette) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    """Every counter a request feeds, and how many latencies were observed."""
    names = {
        "khaalga_graphql_requests_total", "khaalga_graphql_request_duration_seconds_count",
        "khaalga_response_cache_total", "khaalga_rate_limit_rejections_total",
    }  # fmt: skip
    return {
        (s.name, tuple(sorted(s.labels.items()))): s.value
        for family in app.state.metrics.registry.collect()
        for s in family.samples
        if s.name in names
    }


PADDED = body(CATALOG + " " * 300)
ME = body("{ me { subject } }")
GET = Req(
    method="GET",
    body=b"",
    content_type=None,
    query_string=b"query=query%20Catalog%20%7B%20agencies%20%7B%20code%20%7D%20%7D",
)
# name: (settings changes, requests, which of them the fast path answers, statuses)
CASES: dict[str, tuple[dict[str, Any], list[Req], list[bool], list[int]]] = {
    "cached catalog": (
        {},
        [
            Req(),
            Req(),
            Req(chunks=3),
            Req(length=False),
            Req(headers=(("accept", GRAPHQL_RESPONSE),)),
            Req(headers=(("accept", GRAPHQL_RESPONSE),)),
        ],
        [False, True, True, True, False, True],
        [200] * 6,
    ),
    "over GET": ({}, [GET, GET], [False, True], [200, 200]),
    "incoming request id": (
        {},
        [
            Req(),
            Req(headers=(("x-request-id", "req-7.a"),)),
            Req(headers=(("x-request-id", "99010112 <b>"),)),
        ],
        [False, True, True],
        [200] * 3,
    ),
    "request budget spent": (
        {"rate_limits": "anonymous=3/minute"},
        [Req()] * 5,
        [False, True, True, True, True],
        [200, 200, 200, 429, 429],
    ),
    "cost budget spent": (
        {"cost_limits": "anonymous=15/minute"},
        [Req()] * 2,
        [False, True],
        [200, 429],
    ),
    "authorization": (
        {"rate_limits": "anonymous=9/minute,citizen=9/minute"},
        [
            Req(),
            Req(headers=(("authorization", "Bearer nonsense"),)),
            Req(headers=(("authorization", "Basic a2hhYWxnYQ=="),)),
            Req(headers=(("authorization", f"Bearer {TOKEN}"),)),
            Req(),
        ],
        [False, False, False, False, True],
        [200, 401, 401, 200, 200],
    ),
    "not public": ({}, [Req(body=ME)] * 2, [False, False], [200, 200]),
    "content type": (
        {},
        [
            Req(),
            Req(content_type="text/plain"),
            Req(content_type="application/json; charset=latin-1"),
            Req(content_type=None),
            Req(headers=(("content-type", "text/plain"),)),
            Req(content_type="application/json; charset=UTF-8"),
        ],
        [False, False, False, False, False, True],
        [200, 415, 415, 415, 415, 200],
    ),
    "body size": (
        {"max_body_bytes": 200},
        [
            Req(),
            Req(body=PADDED),
            Req(body=PADDED, length=False, chunks=4),
            Req(length=False, headers=(("content-length", "a lot"),)),
            Req(),
        ],
        [False, False, False, False, True],
        [200, 413, 413, 400, 200],
    ),
    "accept": (
        {},
        [
            Req(),
            Req(headers=(("accept", "text/html"),)),
            Req(headers=(("accept", "application/json"), ("accept", GRAPHQL_RESPONSE))),
            Req(headers=(("accept", "application/json"), ("accept", GRAPHQL_RESPONSE))),
        ],
        [False, False, True, True],
        [200, 406, 200, 200],
    ),
}


@pytest.mark.parametrize("case", CASES)
async def test_the_same_answer_with_and_without_the_fast_path(
    tmp_path: Path, case: str, caplog: pytest.LogCaptureFixture
) -> None:
    changes, requests, in_front, statuses = CASES[case]
    caplog.set_level(logging.INFO, logger="khaalga.access")
    async with pair(dataclasses.replace(settings_for(tmp_path), **changes)) as gateways:
        for req, answered_in_front, status in zip(requests, in_front, statuses, strict=True):
            handed_on = gateways.behind.calls
            caplog.clear()
            fast = await call(gateways.fast, req, gateways.token)
            fast_line = access_line(caplog)
            full = await call(gateways.full, req, gateways.token)
            full_line = access_line(caplog)
            sent_id = any(
                name == "x-request-id" and acceptable_request_id(value)
                for name, value in req.headers
            )
            assert comparable(fast, sent_id) == comparable(full, sent_id), req
            assert full.status == status, full.body
            assert (gateways.behind.calls == handed_on) is answered_in_front, req
            for line in (fast_line, full_line):
                assert line.pop("duration_ms") >= 0
                if not sent_id:
                    line.pop("request_id")
            assert fast_line == full_line
        assert counted(gateways.fast) == counted(gateways.full)


async def test_hits_are_counted_by_operation_and_as_cache_hits(tmp_path: Path) -> None:
    async with pair(settings_for(tmp_path)) as gateways:
        for _ in range(4):
            assert (await call(gateways.fast, Req())).status == 200
        assert gateways.behind.calls == 1  # the first, which filled the cache
        scrape = Req(method="GET", path="/metrics", body=b"", content_type=None)
        metrics = (await call(gateways.fast, scrape)).body.decode()
    assert 'khaalga_graphql_requests_total{operation="Catalog",outcome="ok",type="query"} 4.0' in (
        metrics
    )
    assert 'khaalga_response_cache_total{result="hit"} 3.0' in metrics
    assert 'khaalga_response_cache_total{result="miss"} 1.0' in metrics
    assert (
        'khaalga_graphql_request_duration_seconds_count{operation="Catalog",type="query"} 4.0'
        in metrics
    )


@contextlib.contextmanager
def log_output() -> Iterator[io.StringIO]:
    """What the ``khaalga`` loggers write, from here on (after ``create_app``,
    which configures them too)."""
    stream = io.StringIO()
    configure_logging(stream)
    try:
        yield stream
    finally:
        configure_logging()


@pytest.mark.parametrize("other_handlers", [True, False], ids=["with caplog", "ours alone"])
async def test_a_hit_has_its_access_line_and_nothing_personal(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, other_handlers: bool
) -> None:
    """Ours alone, as ``khaalga serve`` runs: the line is written without a
    record (gateway/observability/logs.py), and must be the same line."""
    if not other_handlers:
        monkeypatch.setattr(logging.getLogger(), "handlers", [])
        monkeypatch.setattr(ACCESS, "handle", None)  # no record is logged
    query = "query One($c: ID!) { agency(code: $c) { code } }"
    personal = Req(body=body(query, variables={"c": CITIZEN}, operationName="One"))
    async with pair(settings_for(tmp_path)) as gateways:
        with log_output() as stream:
            for _ in range(2):
                answer = await call(gateways.fast, personal)
                assert answer.status == 200
        assert gateways.behind.calls == 1
    request_id = dict(answer.headers)[b"x-request-id"].decode()
    lines = [orjson.loads(line) for line in stream.getvalue().splitlines()]
    miss, hit = [line for line in lines if line["logger"] == "khaalga.access"]
    assert hit["request_id"] == request_id
    assert (hit["operation"], hit["operation_type"], hit["outcome"]) == ("One", "query", "ok")
    assert (hit["principal_kind"], hit["status"], hit["method"], hit["path"]) == (
        "ANONYMOUS", 200, "POST", "/graphql",
    )  # fmt: skip
    assert isinstance(hit["duration_ms"], float)
    assert hit.keys() == miss.keys()
    assert CITIZEN not in stream.getvalue()
    assert CITIZEN.encode("unicode_escape").decode() not in stream.getvalue()


async def test_no_fast_path_without_a_response_cache(tmp_path: Path) -> None:
    settings = settings_for(tmp_path, response_cache_bytes=0)
    assert not isinstance(create_app(settings).build_middleware_stack(), PublicAnswers)
