"""Connections opened ahead of need, for agencies that close every connection.

Many legacy agency servers answer one request per connection (HTTP/1.0, or
``Connection: close``), as the simulated SOAP agencies do: then every call
opens a connection before its request can leave. On loopback that is three
or four turns of the event loop, and in a fan-out each turn first runs the
other legs' work, so the slowest leg's request left ~1 ms late
(docs/performance-history.md); across a WAN it is a round trip, two or three with
TLS.

So whenever a call has to open a connection, and calls to that address
come often enough for a spare to be used soon, one more is opened in the
background for the next call. A spare unused for ``SPARE_MAX_AGE`` is
closed: a server may drop an idle connection, and one it drops just
as a request is written would fail that request. Common idle timeouts are
5 s and more, so a spare is never held near one. A connection that returns
to aiohttp's keep-alive pool is reused as before, so an agency that keeps
connections alive never gets spares beyond a burst's first connections.

Written by hand because aiohttp has no preconnect (Envoy's
``preconnect_policy`` does this for HTTP/1.1 upstreams). It overrides
``TCPConnector._create_connection``, the one place aiohttp opens a
connection, and ``_close``; both are private, so
``tests/connectors/test_preconnect.py`` exercises them against a real
server and fails if aiohttp changes them.
"""

from __future__ import annotations

import asyncio
import math
import time
from collections import deque
from collections.abc import Awaitable
from typing import Any

import aiohttp
from aiohttp.client_proto import ResponseHandler
from aiohttp.client_reqrep import ClientRequest, ConnectionKey
from aiohttp.tracing import Trace

SPARE_MAX_AGE = 1.0  # seconds: a spare is used within this or closed
MAX_SPARES = 4  # per address, open and opening: bounds what a burst leaves behind


class PreconnectingConnector(aiohttp.TCPConnector):
    def __init__(self, *, spare_max_age: float = SPARE_MAX_AGE, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self._spare_max_age = spare_max_age
        self._spares: dict[ConnectionKey, deque[tuple[ResponseHandler, float]]] = {}
        self._opening: dict[ConnectionKey, set[asyncio.Task[None]]] = {}
        self._last_opened: dict[ConnectionKey, float] = {}

    async def _create_connection(
        self,
        req: ClientRequest,
        traces: list[Trace],
        timeout: aiohttp.ClientTimeout,  # noqa: ASYNC109 (aiohttp's signature)
    ) -> ResponseHandler:
        key = req.connection_key
        now = time.monotonic()
        proto = self._take_spare(key, now)
        if proto is None:
            proto = await super()._create_connection(req, traces, timeout)
        if now - self._last_opened.get(key, -math.inf) <= self._spare_max_age:
            self._replace_when_closed(proto, req, timeout)
        self._last_opened[key] = now
        return proto

    def _take_spare(self, key: ConnectionKey, now: float) -> ResponseHandler | None:
        spares = self._spares.get(key)
        while spares:
            proto, opened = spares.popleft()
            if proto.is_connected() and now - opened <= self._spare_max_age:
                return proto
            proto.close()  # the server dropped it, or it is too old to trust
        return None

    def _replace_when_closed(
        self, proto: ResponseHandler, req: ClientRequest, limits: aiohttp.ClientTimeout
    ) -> None:
        key = req.connection_key
        opening = self._opening.setdefault(key, set())
        if len(opening) + len(self._spares.get(key, ())) >= MAX_SPARES:
            return
        task = asyncio.get_running_loop().create_task(self._replacement(proto, req, limits))
        opening.add(task)
        task.add_done_callback(opening.discard)

    async def _replacement(
        self, proto: ResponseHandler, req: ClientRequest, limits: aiohttp.ClientTimeout
    ) -> None:
        # Opened once the server has closed ``proto`` after its answer, not
        # beside it: the server's work of accepting a connection then falls
        # between calls instead of into the one under way.
        closed = proto.closed
        if closed is not None:
            try:
                await asyncio.wait_for(asyncio.shield(closed), self._spare_max_age)
            except TimeoutError:
                return  # kept alive (aiohttp's pool reuses it) or a slow call
            except aiohttp.ClientError:
                pass  # lost rather than closed: gone all the same
        try:
            spare = await super()._create_connection(req, [], limits)
        except (aiohttp.ClientError, OSError):
            # Only a guess failed: the next call connects itself and meets
            # (and reports) whatever is wrong with the agency.
            return
        if self.closed:
            spare.close()
            return
        key = req.connection_key
        self._spares.setdefault(key, deque()).append((spare, time.monotonic()))
        # Not held until some later call: an agency may keep a thread per connection.
        asyncio.get_running_loop().call_later(self._spare_max_age, self._expire, key, spare)

    def _expire(self, key: ConnectionKey, spare: ResponseHandler) -> None:
        spares = self._spares.get(key, deque())
        for entry in spares:
            if entry[0] is spare:
                spares.remove(entry)
                spare.close()
                return

    def _close(self, **kwargs: Any) -> list[Awaitable[object]]:
        waiters = super()._close(**kwargs)
        for tasks in self._opening.values():
            for task in tasks:
                task.cancel()
                waiters.append(task)
        for spares in self._spares.values():
            for proto, _ in spares:
                proto.close()
        self._spares.clear()
        return waiters
