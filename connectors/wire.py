"""The HTTP exchange under the REST and SOAP connectors: one keep-alive pool
per agency, and the one place where HTTP client failures become connector
errors.

Why aiohttp here when the rest of the stack uses httpx: CPU. A keep-alive
exchange with a local server cost 330-420 µs through httpx's transport
(httpcore, anyio and h11; anyio asks asyncio for the current task a dozen
times per exchange) and 100 µs through aiohttp's C-accelerated client, on
this machine, sequentially. In a gateway LOOKUP the httpx exchange was about
45 % of the request's CPU, and a fan-out pays it once per agency on the one
server core (docs/performance-history.md).

The pool is an ``aiohttp.ClientSession`` opened on first use (aiohttp wants
a running loop), with:

- no cookie jar: a client shared by every citizen's calls must not keep
  cookies (one citizen's session cookie would travel with the next one's);
- no redirects followed, no proxy from the environment;
- the agency's fixed headers and time limits;
- for an agency that closes every connection, the next call's connection
  opened ahead of it (``connectors/preconnect.py``).

OpenTelemetry's aiohttp instrumentation, when tracing is on, adds its trace
config to every session opened after it is installed, which is before any
request (``gateway/observability/tracing.py``): a client span per exchange
and the W3C ``traceparent`` header.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

import aiohttp
from yarl import URL

from connectors.config import Timeouts
from connectors.errors import BackendTimeout, BackendUnavailable
from connectors.preconnect import PreconnectingConnector

_USER_AGENT = "khaalga"


@dataclass(frozen=True, slots=True)
class Answer:
    """An HTTP answer with its body read: what the REST connector and zeep read."""

    status_code: int
    headers: Mapping[str, str]  # case-insensitive
    content: bytes
    encoding: str | None  # the Content-Type's charset; zeep reads it


class Wire:
    """A keep-alive connection pool with one agency's fixed headers and time limits."""

    def __init__(
        self, agency: str, timeouts: Timeouts, headers: Mapping[str, str] | None = None
    ) -> None:
        self._agency = agency
        # ``connect`` bounds the wait for a pooled connection plus connecting.
        self._timeout = aiohttp.ClientTimeout(
            total=None,
            connect=timeouts.connect,
            sock_connect=timeouts.connect,
            sock_read=timeouts.read,
        )
        self._headers = {"User-Agent": _USER_AGENT, **(headers or {})}
        self._session: aiohttp.ClientSession | None = None

    def _open(self) -> aiohttp.ClientSession:
        self._session = aiohttp.ClientSession(
            headers=self._headers,
            timeout=self._timeout,
            cookie_jar=aiohttp.DummyCookieJar(),
            connector=PreconnectingConnector(),
        )
        return self._session

    async def send(
        self,
        method: str,
        url: URL,
        *,
        headers: Mapping[str, str] | None = None,
        content: bytes | None = None,
    ) -> Answer:
        """The answer, body read and connection back in the pool. Raises
        ``BackendTimeout`` or ``BackendUnavailable``, naming the client's
        error type (never the URL: a REST query carries register numbers)."""
        session = self._session if self._session is not None else self._open()
        try:
            async with session.request(
                method, url, headers=headers, data=content, allow_redirects=False
            ) as response:
                body = await response.read()
                return Answer(response.status, response.headers, body, response.charset)
        except TimeoutError as exc:  # aiohttp's connect and read timeouts subclass it
            raise BackendTimeout(self._agency, f"HTTP {method}: {type(exc).__name__}") from exc
        except aiohttp.ClientError as exc:
            # Refused, reset, broken framing: the agency may be back later.
            raise BackendUnavailable(self._agency, f"HTTP {method}: {type(exc).__name__}") from exc

    async def aclose(self) -> None:
        if self._session is not None:
            await self._session.close()
            self._session = None
