"""The HTTP exchange under the REST and SOAP connectors (connectors/wire.py):
one agency's pool serves every citizen's calls, so nothing one call left
behind may travel with the next, and its failures are connector errors that
quote no URL (a REST query carries register numbers)."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import aiohttp
import httpx
import pytest
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, RedirectResponse, Response
from starlette.routing import Route
from yarl import URL

from connectors.config import Timeouts
from connectors.errors import BackendTimeout, BackendUnavailable
from connectors.soap import _Transport
from connectors.wire import Wire
from tests.support.gateway import free_port, served

REGISTER = "УБ99112233"  # made up
TIMEOUTS = Timeouts(connect=1.0, read=0.3, total=2.0)


class Agency:
    """A back end that remembers the cookies it was sent."""

    def __init__(self) -> None:
        self.cookies: list[str | None] = []
        self.calls: list[tuple[str, str, bytes]] = []  # method, query, body
        self.redirected = 0
        self.app = Starlette(routes=[
            Route("/session", self.session, methods=["GET", "POST"]), Route("/moved", self.moved),
            Route("/elsewhere", self.elsewhere), Route("/slow", self.slow),
        ])  # fmt: skip

    async def session(self, request: Request) -> Response:
        self.cookies.append(request.headers.get("cookie"))
        self.calls.append((request.method, request.url.query, await request.body()))
        response = JSONResponse({"data": {}})
        response.set_cookie("session", "citizen-a")
        return response

    async def moved(self, request: Request) -> Response:
        return RedirectResponse("/elsewhere", status_code=302)

    async def elsewhere(self, request: Request) -> Response:
        self.redirected += 1
        return JSONResponse({"data": {}})

    async def slow(self, request: Request) -> Response:
        await asyncio.sleep(TIMEOUTS.read * 3)
        return JSONResponse({"data": {}})


@pytest.fixture
async def agency() -> AsyncIterator[tuple[Agency, str]]:
    backend = Agency()
    async with served(backend.app) as base:
        yield backend, base


@pytest.fixture
async def wire() -> AsyncIterator[Wire]:
    pool = Wire("URB", TIMEOUTS)
    yield pool
    await pool.aclose()


async def test_a_cookie_an_agency_sets_is_never_sent_back(
    agency: tuple[Agency, str], wire: Wire
) -> None:
    backend, base = agency
    # By name: aiohttp's default jar would ignore cookies from an IP address anyway.
    by_name = base.replace("127.0.0.1", "localhost")
    for _ in range(3):
        answer = await wire.send("GET", URL(f"{by_name}/session"))
        assert answer.status_code == 200
    assert backend.cookies == [None, None, None]


async def test_a_redirect_is_answered_not_followed(agency: tuple[Agency, str], wire: Wire) -> None:
    backend, base = agency
    answer = await wire.send("GET", URL(f"{base}/moved"))
    assert answer.status_code == 302
    assert backend.redirected == 0


async def test_a_silent_agency_is_a_timeout(agency: tuple[Agency, str], wire: Wire) -> None:
    _, base = agency
    with pytest.raises(BackendTimeout) as caught:
        await wire.send("GET", URL(f"{base}/slow").with_query(registerNumber=REGISTER))
    assert caught.value.agency == "URB"
    assert REGISTER not in str(caught.value)


async def test_nothing_listening_is_unavailable_and_quotes_no_url(wire: Wire) -> None:
    url = URL(f"http://127.0.0.1:{free_port()}/lookup").with_query(registerNumber=REGISTER)
    with pytest.raises(BackendUnavailable) as caught:
        await wire.send("GET", url)
    assert isinstance(caught.value.__cause__, aiohttp.ClientConnectorError)
    assert REGISTER not in str(caught.value) and "127.0.0.1" not in str(caught.value)


async def test_soap_http_binding_calls_go_through_the_wire_too(
    agency: tuple[Agency, str], wire: Wire
) -> None:
    # zeep's HTTP GET and POST bindings would otherwise use its own httpx
    # client, with a cookie jar shared by every citizen.
    backend, base = agency
    address = base.replace("127.0.0.1", "localhost") + "/session"
    with httpx.Client() as wsdl_client:
        transport = _Transport(wire, wsdl_client)
        for _ in range(2):
            got = await transport.get(address, {"parcel": "18-001"}, {})
            posted = await transport.post(address, b"<parcel>18-001</parcel>", {})
            assert (got.status_code, posted.status_code) == (200, 200)
    assert backend.cookies == [None] * 4
    assert backend.calls[:2] == [
        ("GET", "parcel=18-001", b""),
        ("POST", "", b"<parcel>18-001</parcel>"),
    ]
