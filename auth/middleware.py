"""ASGI middleware: bearer token -> ``scope["principal"]``.

No token is the anonymous principal (the public catalog works); a present
but invalid token is refused with 401, a Bearer challenge and an RFC 9457
problem body, before any GraphQL runs. A token that cannot be checked now
(its issuer's keys are out of reach) is a 503 with Retry-After: the token
may be fine, and calling it invalid would make clients throw it away.
"""

from __future__ import annotations

import math
from collections.abc import Collection, Mapping

from starlette.types import ASGIApp, Receive, Scope, Send

from auth.principal import ANONYMOUS
from auth.request_id import REQUEST_ID, choose
from auth.tokens import InvalidToken, IssuerUnavailable, TokenValidator
from gateway.http.problem import problem


def authorization(headers: Mapping[bytes, bytes]) -> str:
    """The ``Authorization`` header as sent; empty: the caller is anonymous.
    Also how the fast path (gateway/http/public_answer.py) tells an anonymous request."""
    return headers.get(b"authorization", b"").decode("latin-1")


class AuthenticationMiddleware:
    def __init__(self, app: ASGIApp, validator: TokenValidator, skip: Collection[str] = ()) -> None:
        self.app = app
        self.validator = validator
        # Paths that authenticate on their own terms (the OAuth token
        # endpoint's HTTP Basic client credentials) or need no principal.
        self.skip = frozenset(skip)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] not in ("http", "websocket") or scope["path"] in self.skip:
            await self.app(scope, receive, send)
            return
        headers = dict(scope["headers"])
        given = headers.get(b"x-request-id", b"").decode("latin-1")
        request_id = choose(scope.get("request_id"), given)
        scope["request_id"] = request_id
        reset = REQUEST_ID.set(request_id)
        try:
            await self._authenticate(scope, headers, receive, send)
        finally:
            REQUEST_ID.reset(reset)

    async def _authenticate(
        self, scope: Scope, headers: dict[bytes, bytes], receive: Receive, send: Send
    ) -> None:
        header = authorization(headers)
        scheme, _, token = header.partition(" ")
        if not header:
            scope["principal"] = ANONYMOUS
        elif scheme.lower() != "bearer" or not token.strip():
            await _unauthorized(
                scope, receive, send, "the Authorization header must be 'Bearer <token>'"
            )
            return
        else:
            try:
                scope["principal"] = await self.validator.principal(token.strip())
            except InvalidToken as exc:
                await _unauthorized(scope, receive, send, str(exc))
                return
            except IssuerUnavailable as exc:
                await _unavailable(scope, receive, send, exc)
                return
        await self.app(scope, receive, send)


async def _unauthorized(scope: Scope, receive: Receive, send: Send, detail: str) -> None:
    if scope["type"] == "websocket":
        # Refuse the upgrade itself; GraphQL over WebSocket never starts.
        await send({"type": "websocket.close", "code": 4401, "reason": "Unauthorized"})
        return
    challenge = f'Bearer error="invalid_token", error_description="{detail}"'
    response = problem(401, detail, {"WWW-Authenticate": challenge})
    await response(scope, receive, send)


async def _unavailable(scope: Scope, receive: Receive, send: Send, exc: IssuerUnavailable) -> None:
    if scope["type"] == "websocket":
        # 1013 "Try Again Later": the upgrade is refused, but not for a bad token.
        await send({"type": "websocket.close", "code": 1013, "reason": "Try Again Later"})
        return
    retry = str(max(1, math.ceil(exc.retry_after)))
    detail = (
        f"The token cannot be checked now ({exc}); try again later / "
        "Токеныг одоо шалгах боломжгүй байна, дараа дахин оролдоно уу"
    )
    response = problem(503, detail, {"Retry-After": retry})
    await response(scope, receive, send)
