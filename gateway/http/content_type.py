"""POSTs to GraphQL must be ``application/json`` (UTF-8): 415 otherwise.

The media types a browser may send cross-site without a CORS preflight
(``text/plain``, ``application/x-www-form-urlencoded``, ``multipart/form-data``)
are exactly the ones a CSRF attack would use, and file uploads are off, so
nothing but JSON is read. Checked before the body is buffered or parsed.
"""

from __future__ import annotations

from collections.abc import Collection

from starlette.types import ASGIApp, Receive, Scope, Send

from gateway.http.media import parse_media_type
from gateway.http.problem import problem


class JsonContentTypeMiddleware:
    def __init__(self, app: ASGIApp, paths: Collection[str]) -> None:
        self.app = app
        self.paths = frozenset(paths)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http" and scope["method"] == "POST" and scope["path"] in self.paths:
            header = dict(scope["headers"]).get(b"content-type", b"").decode("latin-1")
            media, params = parse_media_type(header)
            charset = params.get("charset", "utf-8").lower()
            if media != "application/json" or charset not in ("utf-8", "utf8"):
                detail = (
                    "a GraphQL POST must be application/json in UTF-8, "
                    f"not {header or 'without a Content-Type'}"
                )
                response = problem(415, detail, {"accept": "application/json"})
                await response(scope, receive, send)
                return
        await self.app(scope, receive, send)
