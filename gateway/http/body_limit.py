"""Refuse request bodies over a size with 413 before anything reads them.

GraphQL requests are small (no uploads), so the whole body is buffered here
and replayed to the application: a client that lies in ``Content-Length`` or
streams without one is cut off at the limit just the same.

``length_refusal`` and ``receive_body`` are the two decisions; the fast path
in front of the app (gateway/http/public_answer.py) takes them too.
"""

from __future__ import annotations

from collections.abc import Mapping

from starlette.responses import Response
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from gateway.http.problem import problem


def too_large(max_bytes: int) -> Response:
    detail = f"the request body is over {max_bytes} bytes"
    return problem(413, detail, {"connection": "close"})


def length_refusal(headers: Mapping[bytes, bytes], max_bytes: int) -> Response | None:
    """The answer to a ``Content-Length`` that is not a number (400) or over
    the limit (413); None when there is none or it is within the limit."""
    declared = headers.get(b"content-length")
    if declared is None:
        return None
    if not declared.isdigit():
        return problem(400, "Content-Length is not a number")
    return too_large(max_bytes) if int(declared) > max_bytes else None


async def receive_body(receive: Receive, max_bytes: int) -> tuple[list[Message], bytes | None]:
    """The messages received, as received, and the whole body; the body is
    None when it went over ``max_bytes`` (reading stops there) or the client
    went away (the last message is not ``http.request``)."""
    messages: list[Message] = []
    size = 0
    while True:
        message = await receive()
        messages.append(message)
        if message["type"] != "http.request":
            return messages, None
        size += len(message.get("body", b""))
        if size > max_bytes:
            return messages, None
        if not message.get("more_body", False):
            return messages, b"".join(m.get("body", b"") for m in messages)


def replay(messages: list[Message], receive: Receive) -> Receive:
    """``receive`` again, with ``messages`` (already received) first."""
    pending = iter(messages)

    async def replayed() -> Message:
        return next(pending, None) or await receive()

    return replayed


class BodyLimitMiddleware:
    def __init__(self, app: ASGIApp, max_bytes: int) -> None:
        self.app = app
        self.max_bytes = max_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        refusal = length_refusal(dict(scope["headers"]), self.max_bytes)
        if refusal is not None:
            await refusal(scope, receive, send)
            return
        messages, body = await receive_body(receive, self.max_bytes)
        if body is None:
            if messages[-1]["type"] == "http.request":
                await too_large(self.max_bytes)(scope, receive, send)
            return  # else the client went away
        await self.app(scope, _as_one_message(body, receive), send)


def _as_one_message(body: bytes, receive: Receive) -> Receive:
    sent = False

    async def replay() -> Message:
        nonlocal sent
        if sent:
            return await receive()  # http.disconnect, when it comes
        sent = True
        return {"type": "http.request", "body": body, "more_body": False}

    return replay
