"""A SOAP agency on loopback: spyne under a threaded wsgiref server.

The server runs in its own thread because spyne is synchronous; faults are
applied in front of spyne so that a slow or broken agency looks slow or
broken on the wire, whatever the operation.
"""

from __future__ import annotations

import asyncio
import logging
import threading
from collections.abc import Callable, Iterable
from pathlib import Path
from socketserver import ThreadingMixIn
from typing import Any
from wsgiref.simple_server import WSGIRequestHandler, WSGIServer, make_server

from connectors.config import BackendEndpoint
from connectors.soap_signing import load_public_key
from gateway.catalog.model import Agency
from legacy.base import Simulator
from legacy.control import Faults
from legacy.keys import ensure_keypair
from legacy.records import AgencyRecords, Filing
from legacy.soap._spyne import Fault, WsgiApplication, forget
from legacy.soap.desk import AgencyDesk
from legacy.soap.service import build_application

HOST = "127.0.0.1"
GARBAGE = b"ORA-03113: end-of-file on communication channel\n\x00\x00"

_UNAVAILABLE = "503 Service Unavailable"

StartResponse = Callable[..., Any]


class _DeliberateFaults(logging.Filter):
    """spyne logs every Fault it answers with a traceback; ours are answers, not bugs."""

    def filter(self, record: logging.LogRecord) -> bool:
        return not (record.exc_info and isinstance(record.exc_info[1], Fault))


for _name in ("spyne.application", "spyne.application.client"):
    logging.getLogger(_name).addFilter(_DeliberateFaults())


def access_token(agency: Agency) -> str:
    return f"dev-xyp-{agency.code.lower()}"


class SoapSimulator(Simulator):
    def __init__(
        self, agency: Agency, workdir: Path, port: int, review_seconds: float = 3.0
    ) -> None:
        super().__init__(agency, workdir, port, review_seconds)
        self._server: _Server | None = None
        self._thread: threading.Thread | None = None
        self._records: AgencyRecords | None = None
        self._app: Any = None
        self._stopping = threading.Event()

    @classmethod
    def endpoint_for(cls, agency: Agency, workdir: Path, port: int) -> BackendEndpoint:
        private, public = ensure_keypair(workdir.parent / "keys")
        return BackendEndpoint(
            url=f"http://{HOST}:{port}/?wsdl",
            access_token=access_token(agency),
            signing_key=private,
            verify_key=public,
        )

    async def start(self) -> None:
        if self._server is not None:
            return
        endpoint = self.endpoint()
        assert endpoint.verify_key is not None and endpoint.access_token is not None
        self._records = self._open_records()
        desk = AgencyDesk(
            self._records, endpoint.access_token, load_public_key(endpoint.verify_key), self._live
        )
        self._app = build_application(self.agency, desk)
        self._stopping.clear()
        wsgi = WsgiApplication(self._app)
        # Spyne builds the WSDL lazily on the first ?wsdl request; that costs
        # CPU time a client's read timeout can run out on, so build it now.
        await asyncio.to_thread(
            wsgi.doc.wsdl11.build_interface_document, f"http://{HOST}:{self.port}/"
        )
        gate = _FaultGate(wsgi, self._live, self._stopping)
        # Binding happens here, so requests queue in the backlog from now on.
        self._server = make_server(HOST, self.port, gate, _Server, _QuietHandler)
        self._thread = threading.Thread(
            target=self._server.serve_forever,
            kwargs={"poll_interval": 0.05},
            name=f"soap-sim-{self.agency.code}",
            daemon=True,
        )
        self._thread.start()

    async def stop(self) -> None:
        server, thread, records = self._server, self._thread, self._records
        self._server = self._thread = self._records = None
        self._stopping.set()  # cuts short any request sleeping on faults.delay
        if server is not None:
            await asyncio.to_thread(_shut, server, thread)
        if records is not None:
            records.close()
        if self._app is not None:
            forget(self._app)
            self._app = None

    def filings(self) -> list[Filing]:
        if self._records is not None:
            return self._records.filings()
        records = self._open_records()
        try:
            return records.filings()
        finally:
            records.close()

    def _open_records(self) -> AgencyRecords:
        path = self.workdir / "records.sqlite"
        return AgencyRecords(path, self.agency.code, self.review_seconds)

    def _live(self) -> Faults:
        # Read on every request: tests may replace ``faults`` as well as mutate it.
        return self.faults


def _shut(server: _Server, thread: threading.Thread | None) -> None:
    server.shutdown()
    server.server_close()  # joins request threads and frees the port
    if thread is not None:
        thread.join()


class _Server(ThreadingMixIn, WSGIServer):
    daemon_threads = True
    allow_reuse_address = True
    # socketserver listens with a backlog of 5: with a few dozen clients
    # connecting at once (this agency closes every connection, so each call
    # connects anew) the kernel dropped SYNs, and the retransmission a second
    # later put 1-2 s into the tail. Real SOAP servers queue far more.
    request_queue_size = 128


class _QuietHandler(WSGIRequestHandler):
    timeout = 10  # a client that connects and says nothing must not pin stop()

    def log_message(self, format: str, *args: Any) -> None:
        pass  # request lines are noise in test output


class _FaultGate:
    """WSGI middleware that plays the ``Faults`` switches before spyne sees the request."""

    def __init__(self, app: Any, faults: Callable[[], Faults], stopping: threading.Event) -> None:
        self._app = app
        self._faults = faults
        self._stopping = stopping

    def __call__(self, environ: dict[str, Any], start_response: StartResponse) -> Iterable[bytes]:
        faults = self._faults()
        if faults.delay > 0 and self._stopping.wait(faults.delay):
            return _answer(environ, start_response, _UNAVAILABLE, b"stopping", "text/plain")
        if faults.down and environ["REQUEST_METHOD"] != "POST":
            # POSTs reach spyne, which answers a Server fault like a real agency app would.
            return _answer(environ, start_response, _UNAVAILABLE, b"down", "text/plain")
        if faults.garbage:
            return _answer(environ, start_response, "200 OK", GARBAGE, "text/xml")
        result: Iterable[bytes] = self._app(environ, start_response)
        return result


def _answer(
    environ: dict[str, Any],
    start_response: StartResponse,
    status: str,
    body: bytes,
    content_type: str,
) -> list[bytes]:
    # Drain the request first: closing a socket with unread input sends a TCP
    # reset, and the client would see "connection reset" instead of our answer.
    length = int(environ.get("CONTENT_LENGTH") or 0)
    if length:
        environ["wsgi.input"].read(length)
    start_response(status, [("Content-Type", content_type), ("Content-Length", str(len(body)))])
    return [body]
