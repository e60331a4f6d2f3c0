"""POSTs to GraphQL must be ``application/json`` (UTF-8): 415 otherwise.

The media types a browser may send cross-site without a CORS preflight
(``text/plain``, ``application/x-www-form-urlencoded``, ``multipart/form-data``)
are exactly the ones a CSRF attack would use, and file uploads are off, so
nothing but JSON is read. Checked before the body is buffered or parsed.
"""

from __future__ import annotations

import functools
from collections.abc import Collection, Mapping

from starlette.types import ASGIApp, Receive, Scope, Send

from gateway.http.media import parse_media_type
from gateway.http.problem import problem


def content_type(headers: Mapping[bytes, bytes]) -> str:
    return headers.get(b"content-type", b"").decode("latin-1")


@functools.lru_cache(maxsize=64)
def is_json(header: str) -> bool:
    """``header`` (a ``Content-Type``) is JSON in UTF-8; the charset may be
    left out. The fast path's test too (gateway/http/public_answer.py).
    Remembered: clients send a handful of spellings, each on every request."""
    media, params = parse_media_type(header)
    charset = params.get("charset", "utf-8").lower()
    return media == "application/json" and charset in ("utf-8", "utf8")


class JsonContentTypeMiddleware:
    def __init__(self, app: ASGIApp, paths: Collection[str]) -> None:
        self.app = app
        self.paths = frozenset(paths)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http" and scope["method"] == "POST" and scope["path"] in self.paths:
            header = content_type(dict(scope["headers"]))
            if not is_json(header):
                detail = (
                    "a GraphQL POST must be application/json in UTF-8, "
                    f"not {header or 'without a Content-Type'}"
                )
                response = problem(415, detail, {"accept": "application/json"})
                await response(scope, receive, send)
                return
        await self.app(scope, receive, send)
