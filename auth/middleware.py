"""ASGI middleware: bearer token -> ``scope["principal"]``.

No token is the anonymous principal (the public catalog works); a present
but invalid token is refused with 401, a Bearer challenge and an RFC 9457
problem body, before any GraphQL runs.
"""

from __future__ import annotations

import orjson
from starlette.types import ASGIApp, Receive, Scope, Send

from auth.principal import ANONYMOUS
from auth.tokens import InvalidToken, TokenValidator


class AuthenticationMiddleware:
    def __init__(self, app: ASGIApp, validator: TokenValidator) -> None:
        self.app = app
        self.validator = validator

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] not in ("http", "websocket"):
            await self.app(scope, receive, send)
            return
        header = dict(scope["headers"]).get(b"authorization", b"").decode("latin-1")
        scheme, _, token = header.partition(" ")
        if not header:
            scope["principal"] = ANONYMOUS
        elif scheme.lower() != "bearer" or not token.strip():
            await _unauthorized(send, "the Authorization header must be 'Bearer <token>'")
            return
        else:
            try:
                scope["principal"] = self.validator.principal(token.strip())
            except InvalidToken as exc:
                await _unauthorized(send, str(exc))
                return
        await self.app(scope, receive, send)


async def _unauthorized(send: Send, detail: str) -> None:
    body = orjson.dumps(
        {
            "type": "about:blank",
            "title": "Unauthorized / Нэвтрэх эрхгүй",
            "status": 401,
            "detail": detail,
        }
    )
    challenge = f'Bearer error="invalid_token", error_description="{detail}"'
    await send(
        {
            "type": "http.response.start",
            "status": 401,
            "headers": [
                (b"content-type", b"application/problem+json"),
                (b"www-authenticate", challenge.encode()),
                (b"content-length", str(len(body)).encode()),
            ],
        }
    )
    await send({"type": "http.response.body", "body": body})
