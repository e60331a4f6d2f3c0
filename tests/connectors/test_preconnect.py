"""Connections opened ahead of need (connectors/preconnect.py): an agency
that closes every connection finds the next call's connection already open,
one that keeps connections alive gets no extra ones, a connection reset
rather than closed is replaced all the same, and a spare is never trusted
once the agency may have dropped it."""

from __future__ import annotations

import asyncio
import gc
import re
import socket
import struct
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import aiohttp
import pytest
from yarl import URL

from connectors.config import Timeouts
from connectors.errors import BackendUnavailable
from connectors.preconnect import PreconnectingConnector
from connectors.wire import Wire

TIMEOUTS = Timeouts(connect=1.0, read=1.0, total=2.0)
_LENGTH = re.compile(rb"content-length: *(\d+)", re.IGNORECASE)


class Agency:
    """An HTTP server on loopback that notes, for each request, when the
    connection carrying it was accepted. ``keep_alive=False`` answers as
    HTTP/1.0 and closes, as the simulated SOAP agencies do."""

    def __init__(
        self,
        *,
        keep_alive: bool,
        drop_idle_after: float | None = None,
        accept: int = 1000,
        reset_request: int | None = None,
    ) -> None:
        self.keep_alive = keep_alive
        self.drop_idle_after = drop_idle_after
        self.accept = accept  # connections, then it stops listening
        self.reset_request = reset_request  # the n-th request (from 1) gets a reset, no answer
        self.requests = 0
        self.connections = 0
        self.open = 0
        self.carried_by: list[float] = []  # per request: its connection's accept time
        self.server: asyncio.Server | None = None
        self._changed = asyncio.Condition()

    async def until(self, condition: Callable[[], bool]) -> None:
        """Wait (at most 2 s) until ``condition`` holds of its connections."""
        async with asyncio.timeout(2), self._changed:
            await self._changed.wait_for(condition)

    async def _note(self, opened: int) -> None:
        async with self._changed:
            self.connections += max(opened, 0)
            self.open += opened
            self._changed.notify_all()

    async def handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        accepted = time.monotonic()
        await self._note(+1)
        if self.connections >= self.accept and self.server is not None:
            self.server.close()
        try:
            while True:
                try:
                    head = await asyncio.wait_for(
                        reader.readuntil(b"\r\n\r\n"), self.drop_idle_after
                    )
                except (asyncio.IncompleteReadError, TimeoutError):
                    return  # the client went away, or the agency drops an idle connection
                length = _LENGTH.search(head)
                await reader.readexactly(int(length.group(1)) if length else 0)
                self.requests += 1
                if self.requests == self.reset_request:
                    # Lingering 0 s: closing sends a reset (RST), not an orderly close (FIN).
                    sock = writer.get_extra_info("socket")
                    sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
                    writer.transport.abort()
                    return
                self.carried_by.append(accepted)
                if self.keep_alive:
                    writer.write(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok")
                    await writer.drain()
                    continue
                writer.write(b"HTTP/1.0 200 OK\r\nContent-Length: 2\r\n\r\nok")
                await writer.drain()
                return
        finally:
            writer.close()
            await self._note(-1)

    async def start(self) -> str:
        self.server = await asyncio.start_server(self.handle, "127.0.0.1", 0)
        port = self.server.sockets[0].getsockname()[1]
        return f"http://127.0.0.1:{port}/lookup"


Serve = Callable[..., Awaitable[tuple[Agency, str]]]


@pytest.fixture
async def serve() -> AsyncIterator[Serve]:
    """Start an ``Agency`` with the given options: (it, its URL)."""
    agencies: list[Agency] = []

    async def start(**options: Any) -> tuple[Agency, str]:
        agency = Agency(**options)
        agencies.append(agency)
        return agency, await agency.start()

    yield start
    for agency in agencies:
        if agency.server is not None:
            agency.server.close()


@pytest.fixture
async def wire() -> AsyncIterator[Wire]:
    wire = Wire("TAX", TIMEOUTS)
    yield wire
    await wire.aclose()


@pytest.fixture
async def unretrieved() -> AsyncIterator[list[dict[str, Any]]]:
    """What the loop reports that no one retrieved, such as a failed task's error."""
    loop = asyncio.get_running_loop()
    reported: list[dict[str, Any]] = []
    loop.set_exception_handler(lambda _loop, context: reported.append(context))
    yield reported
    loop.set_exception_handler(None)


async def _lookup(wire: Wire, url: str) -> int:
    return (await wire.send("POST", URL(url), content=b"<lookup/>")).status_code


async def _calls(session: aiohttp.ClientSession, url: str, count: int, pause: float) -> list[float]:
    """``count`` POSTs in a row; when each started."""
    started = []
    for _ in range(count):
        await asyncio.sleep(pause)
        started.append(time.monotonic())
        async with session.post(url, data=b"<lookup/>") as response:
            assert response.status == 200
            await response.read()
    return started


async def test_an_agency_that_closes_each_connection_finds_the_next_one_open(
    serve: Serve, wire: Wire
) -> None:
    agency, url = await serve(keep_alive=False)
    started = []
    for _ in range(6):
        await asyncio.sleep(0.05)  # room for the spare to connect, well within its age
        started.append(time.monotonic())
        assert await _lookup(wire, url) == 200
    await wire.aclose()
    # The first two calls connect themselves; from the third on, each
    # request travels on a connection opened before its call began.
    assert [carried < began for carried, began in zip(agency.carried_by, started, strict=True)] == [
        False, False, True, True, True, True,
    ]  # fmt: skip
    await agency.until(lambda: agency.open == 0)  # closing the wire closed the last spare


async def test_an_agency_that_keeps_connections_alive_gets_no_extra_ones(serve: Serve) -> None:
    # A burst opens three connections at once; each stays in aiohttp's pool,
    # so none is replaced, and the calls after the burst reuse them.
    agency, url = await serve(keep_alive=True)
    async with aiohttp.ClientSession(connector=PreconnectingConnector()) as session:
        await asyncio.gather(*(_calls(session, url, 1, pause=0) for _ in range(3)))
        await _calls(session, url, 6, pause=0.01)
        await asyncio.sleep(0.05)
    assert agency.connections == 3


async def test_a_spare_the_agency_dropped_is_not_used(serve: Serve) -> None:
    # The agency drops a connection idle for 20 ms; calls come every 60 ms.
    agency, url = await serve(keep_alive=False, drop_idle_after=0.02)
    async with aiohttp.ClientSession(connector=PreconnectingConnector()) as session:
        started = await _calls(session, url, 6, pause=0.06)
    assert all(carried > began for carried, began in zip(agency.carried_by, started, strict=True))
    assert agency.connections > 6  # the spares were opened, and dropped unused


async def test_a_spare_unused_for_its_age_is_closed(serve: Serve) -> None:
    agency, url = await serve(keep_alive=False)
    connector = PreconnectingConnector(spare_max_age=0.1)
    async with aiohttp.ClientSession(connector=connector) as session:
        await _calls(session, url, 3, pause=0.01)
        await agency.until(lambda: agency.connections == 4)  # a spare waits for the next call
        await agency.until(lambda: agency.open == 0)  # and is closed when none comes
        [began] = await _calls(session, url, 1, pause=0)
        assert agency.carried_by[-1] > began  # which then connects anew


async def test_a_spare_that_cannot_connect_changes_nothing(
    serve: Serve, wire: Wire, unretrieved: list[dict[str, Any]]
) -> None:
    # The agency stops listening after its second connection: the spare
    # meant for the third call fails to connect, and the third call meets
    # the refusal itself, as the error it always was.
    _, url = await serve(keep_alive=False, accept=2)
    for _ in range(2):
        await asyncio.sleep(0.01)
        assert await _lookup(wire, url) == 200
    await asyncio.sleep(0.05)
    with pytest.raises(BackendUnavailable):
        await _lookup(wire, url)
    gc.collect()
    assert unretrieved == []


async def test_a_connection_the_agency_resets_is_still_replaced(
    serve: Serve, wire: Wire, unretrieved: list[dict[str, Any]]
) -> None:
    # The second call's connection is reset instead of answered: that call
    # fails, and its replacement, which waits for that connection to end,
    # still opens, so the third call finds its connection open.
    agency, url = await serve(keep_alive=False, reset_request=2)
    await asyncio.sleep(0.01)
    assert await _lookup(wire, url) == 200
    await asyncio.sleep(0.01)
    with pytest.raises(BackendUnavailable):
        await _lookup(wire, url)
    await agency.until(lambda: agency.connections == 3)  # the replacement
    began = time.monotonic()
    assert await _lookup(wire, url) == 200
    assert agency.carried_by[-1] < began
    gc.collect()
    assert unretrieved == []


async def test_a_burst_leaves_at_most_a_few_spares(serve: Serve) -> None:
    agency, url = await serve(keep_alive=False)
    async with aiohttp.ClientSession(connector=PreconnectingConnector()) as session:
        for _ in range(3):
            await asyncio.gather(*(_calls(session, url, 1, pause=0) for _ in range(10)))
        await agency.until(lambda: agency.open >= 1)
        await asyncio.sleep(0.1)  # the rest of the replacements, were there more
        # Spares were kept, but not one per call of the burst.
        assert 1 <= agency.open < 10
