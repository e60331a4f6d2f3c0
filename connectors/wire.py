"""The HTTP exchange under the REST and SOAP connectors: one pooled httpx
transport per agency, sent prebuilt requests.

Why not ``httpx.AsyncClient``: per request it merges the URL with its base,
merges headers and cookies, runs the auth and redirect machinery and parses
every answer into its cookie jar (twice through zeep), which together cost as
much CPU as the exchange itself. A connector needs none of it: its base URL,
headers and time limits are fixed, it follows no redirects, and a client
shared by every citizen's calls must not keep cookies anyway (one citizen's
session cookie would travel with the next citizen's request).

The transport is still httpx's, so its exceptions, keep-alive pool and the
OpenTelemetry instrumentation (which wraps ``AsyncHTTPTransport``, sending
``traceparent``) are the same as through a client.
"""

from __future__ import annotations

from collections.abc import Mapping

import httpx

from connectors.config import Timeouts

_USER_AGENT = "khaalga"


class Wire:
    """A keep-alive connection pool with the agency's fixed headers and time limits."""

    def __init__(self, timeouts: Timeouts, headers: Mapping[str, str] | None = None) -> None:
        # The transport takes its limits from each request, not from itself:
        # without this extension httpcore would wait forever.
        timeout = httpx.Timeout(
            connect=timeouts.connect, read=timeouts.read, write=timeouts.read, pool=timeouts.connect
        )
        self._extensions = {"timeout": timeout.as_dict()}
        self._headers = {"User-Agent": _USER_AGENT, **(headers or {})}
        self._transport = httpx.AsyncHTTPTransport()

    def request(
        self,
        method: str,
        url: httpx.URL,
        *,
        headers: Mapping[str, str] | None = None,
        content: bytes | None = None,
    ) -> httpx.Request:
        merged = self._headers if headers is None else {**self._headers, **headers}
        return httpx.Request(
            method, url, headers=merged, content=content, extensions=self._extensions
        )

    async def send(self, request: httpx.Request) -> httpx.Response:
        """The answer, body read and connection back in the pool; raises httpx's
        ``TransportError`` family like a client would."""
        response = await self._transport.handle_async_request(request)
        try:
            await response.aread()
        finally:
            await response.aclose()
        response.request = request
        return response

    @property
    def transport(self) -> httpx.AsyncHTTPTransport:
        return self._transport

    async def aclose(self) -> None:
        await self._transport.aclose()
