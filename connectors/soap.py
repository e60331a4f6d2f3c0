"""SOAP back ends (XYP-style), through zeep's async transport.

The WSDL is loaded on first use, not at construction, so a gateway can start
while an agency is down; a failed load is retried on the next send.
"""

from __future__ import annotations

import asyncio
from collections.abc import Mapping
from typing import Any, NoReturn

import httpx
import zeep
import zeep.exceptions
from lxml import etree
from yarl import URL
from zeep.helpers import serialize_object
from zeep.transports import AsyncTransport
from zeep.wsdl.utils import etree_to_string

from connectors import soap_signing
from connectors.base import Action, BackendRequest, BackendResponse, Connector
from connectors.config import BackendEndpoint, Timeouts
from connectors.errors import (
    BackendRejected,
    BackendTimeout,
    BackendUnavailable,
    MappingError,
    ProtocolError,
)
from connectors.wire import Answer, Wire
from gateway.catalog.model import Agency

STATUS_OPERATION = "getApplicationStatus"
_DEFAULT_TIMEOUTS = Timeouts()  # frozen, so one shared default is safe


class _NotFound(BackendRejected):
    """The agency has no such record: an answer to a LOOKUP, a refusal elsewhere."""


class _Transport(AsyncTransport):
    """zeep's transport, sending through the connector's ``Wire`` (so its
    errors are ours already), without zeep's debug log of every envelope
    (personal data) and without its copy of each answer into a
    ``requests.Response``: the wire's ``Answer`` has the status, headers,
    content and encoding zeep reads."""

    def __init__(self, wire: Wire, wsdl_client: httpx.Client) -> None:
        # zeep also makes an httpx client for operations; every method that
        # would use it is overridden below, so it never opens a connection.
        super().__init__(wsdl_client=wsdl_client)  # type: ignore[no-untyped-call]
        self._wire = wire
        # The service address comes from the WSDL: one per port, parsed once.
        self._urls: dict[str, URL] = {}

    def _url(self, address: str) -> URL:
        url = self._urls.get(address)
        if url is None:
            url = self._urls.setdefault(address, URL(address))
        return url

    async def post(self, address: str, message: bytes, headers: dict[str, str]) -> Answer:
        return await self._wire.send("POST", self._url(address), headers=headers, content=message)

    async def post_xml(
        self, address: str, envelope: etree._Element, headers: dict[str, str]
    ) -> Answer:
        message = etree_to_string(envelope)  # type: ignore[no-untyped-call]
        return await self.post(address, message, headers)

    async def get(self, address: str, params: Mapping[str, str], headers: dict[str, str]) -> Answer:
        url = self._url(address)
        return await self._wire.send(
            "GET", url.with_query(params) if params else url, headers=headers
        )


class SoapConnector(Connector):
    @classmethod
    def check_dialect(cls, agency: Agency) -> None:
        unknown = set(agency.backend.dialect) - {"namespace"}
        if unknown:
            raise ValueError(f"unknown SOAP dialect keys {sorted(unknown)}")
        if not isinstance(agency.backend.dialect.get("namespace", ""), str):
            raise ValueError("namespace must be text")

    def __init__(
        self, agency: Agency, endpoint: BackendEndpoint, timeouts: Timeouts = _DEFAULT_TIMEOUTS
    ) -> None:
        if endpoint.access_token is None or endpoint.signing_key is None:
            raise ValueError(f"{agency.code}: a SOAP endpoint needs access_token and signing_key")
        self._code = agency.code
        self._url = endpoint.url
        self._token = endpoint.access_token
        self._key = soap_signing.load_private_key(endpoint.signing_key)
        self._timeouts = timeouts
        self._http_timeout = httpx.Timeout(timeouts.read, connect=timeouts.connect)
        self._wire = Wire(agency.code, timeouts)
        self._client: zeep.AsyncClient | None = None
        self._rendered: dict[str, tuple[dict[str, str], list[etree._Element]]] = {}
        self._loading = asyncio.Lock()
        # LOOKUP operations with one result: zeep unwraps those to a bare value.
        self._single: dict[str, str] = {
            s.binding.operation: next(iter(s.binding.response.values()))
            for s in agency.services
            if len(s.binding.response) == 1
        }

    async def send(self, request: BackendRequest) -> BackendResponse:
        try:
            async with asyncio.timeout(self._timeouts.total):
                return await self._send(request)
        except TimeoutError as exc:
            raise BackendTimeout(self._code, "no answer within the overall timeout") from exc

    async def aclose(self) -> None:
        await self._wire.aclose()

    async def _send(self, request: BackendRequest) -> BackendResponse:
        match request.action:
            case Action.LOOKUP:
                try:
                    result = await self._call(request, request.operation, request.payload)
                except _NotFound:
                    return BackendResponse(status="NOT_FOUND")
                return BackendResponse(data=self._data(request.operation, result))
            case Action.SUBMIT:
                if not request.idempotency_key:
                    raise MappingError(
                        self._code, request.service_code, "idempotencyKey", "SUBMIT needs a key"
                    )
                payload = {**request.payload, "idempotencyKey": request.idempotency_key}
                result = await self._call(request, request.operation, payload)
                reference, status = self._fields(result, "reference", "status")
                if not reference:
                    raise ProtocolError(self._code, "submit answer has no reference")
                return BackendResponse(reference=reference, status=status or "DELIVERED")
            case Action.STATUS:
                if not request.reference:
                    raise MappingError(
                        self._code, request.service_code, "reference", "STATUS needs a reference"
                    )
                payload = {"reference": request.reference}
                result = await self._call(request, STATUS_OPERATION, payload)
                status, note = self._fields(result, "status", "note")
                if not status:
                    raise ProtocolError(self._code, "status answer has no status")
                return BackendResponse(reference=request.reference, status=status, note=note)
        raise MappingError(self._code, request.service_code, "action", "unknown action")

    async def _call(
        self, request: BackendRequest, operation: str, payload: Mapping[str, Any]
    ) -> Any:
        """Call one operation; the one place upstream exceptions become ours."""
        client = await self._wsdl()
        try:
            method = getattr(client.service, operation)
        except AttributeError as exc:
            raise MappingError(
                self._code, request.service_code, "operation", f"WSDL has no {operation}"
            ) from exc
        try:
            headers = self._signed_headers(client, operation)
            return await method(**payload, _soapheaders=headers)
        except zeep.exceptions.Fault as exc:
            self._raise_fault(exc)
        except zeep.exceptions.TransportError as exc:
            self._raise_http(exc)
        except zeep.exceptions.ValidationError as exc:
            raise MappingError(
                self._code, request.service_code, "payload", "does not fit the WSDL"
            ) from exc
        except TypeError as exc:  # zeep: an argument the operation does not take
            raise MappingError(
                self._code, request.service_code, "payload", "does not fit the WSDL"
            ) from exc
        except (zeep.exceptions.Error, etree.LxmlError, ValueError) as exc:
            raise ProtocolError(self._code, "unreadable SOAP answer") from exc

    def _signed_headers(
        self, client: zeep.AsyncClient, operation: str
    ) -> list[etree._Element] | dict[str, str]:
        """The XYP headers as elements, rendered once per operation and signature.

        zeep renders a dict anew on every call through the operation's header
        type (half the cost of building the envelope); elements it deep-copies
        and appends, so the cached ones are shared safely between calls."""
        values = soap_signing.headers(self._key, self._token)
        cached = self._rendered.get(operation)
        if cached is not None and cached[0] == values:
            return cached[1]
        header = client.service._binding.get(operation).input.header
        if header is None:
            return values  # zeep refuses it as before: the WSDL declares no headers
        holder = etree.Element("header")
        value = header(**values)
        for name, element in header.type.elements:
            element.render(holder, value[name], ["header", name])
        rendered = list(holder)
        self._rendered[operation] = (values, rendered)
        return rendered

    def _raise_fault(self, exc: zeep.exceptions.Fault) -> NoReturn:
        kind, detail = _fault_kind(exc)
        label = f"{kind}.{detail}" if detail else kind
        if kind == "Client" and detail == "NotFound":
            raise _NotFound(self._code, "SOAP fault Client.NotFound") from exc
        if kind == "Client":
            raise BackendRejected(self._code, f"SOAP fault {label}") from exc
        if kind == "Server":
            raise BackendUnavailable(self._code, f"SOAP fault {label}") from exc
        raise ProtocolError(self._code, "SOAP fault with an unknown code") from exc

    def _raise_http(self, exc: zeep.exceptions.TransportError) -> NoReturn:
        code = int(exc.status_code or 0)
        if code >= 500:
            raise BackendUnavailable(self._code, f"HTTP {code}") from exc
        if 400 <= code < 500:
            raise BackendRejected(self._code, f"HTTP {code}") from exc
        # zeep reports an unparseable 2xx body as a transport error too.
        raise ProtocolError(self._code, f"HTTP {code} with a body that is not XML") from exc

    async def _wsdl(self) -> zeep.AsyncClient:
        if self._client is None:
            async with self._loading:
                if self._client is None:
                    self._client = await asyncio.to_thread(self._load)
        return self._client

    def _load(self) -> zeep.AsyncClient:
        # zeep loads WSDLs synchronously, hence a sync client in a worker thread.
        wsdl_http = httpx.Client(timeout=self._http_timeout)
        try:
            transport = _Transport(self._wire, wsdl_http)
            zeep_client: zeep.AsyncClient = zeep.AsyncClient(  # type: ignore[no-untyped-call]
                self._url, transport=transport
            )
            return zeep_client
        except httpx.TimeoutException as exc:
            raise BackendTimeout(self._code, "WSDL fetch timed out") from exc
        except (httpx.HTTPError, zeep.exceptions.TransportError) as exc:
            raise BackendUnavailable(self._code, "WSDL could not be fetched") from exc
        except (zeep.exceptions.Error, etree.LxmlError, LookupError) as exc:
            # Fetched but unusable: like any unparseable answer, retrying cannot help.
            raise ProtocolError(self._code, "WSDL is not a usable WSDL") from exc
        finally:
            wsdl_http.close()

    def _data(self, operation: str, result: Any) -> dict[str, Any]:
        data = serialize_object(result, target_cls=dict)  # type: ignore[no-untyped-call]
        if isinstance(data, dict):
            return data
        if operation in self._single:
            return {self._single[operation]: data}
        raise ProtocolError(self._code, "lookup answer has an unexpected shape")

    def _fields(self, result: Any, *names: str) -> list[str | None]:
        data = serialize_object(result, target_cls=dict)  # type: ignore[no-untyped-call]
        if not isinstance(data, dict):
            raise ProtocolError(self._code, "answer has an unexpected shape")
        return [None if data.get(n) is None else str(data[n]) for n in names]


def _fault_kind(exc: zeep.exceptions.Fault) -> tuple[str, str]:
    """('Client' | 'Server' | other, detail) from a faultcode like 'soap:Client.NotFound'."""
    local = str(exc.code or "").rpartition(":")[2]
    kind, _, detail = local.partition(".")
    kind = {"Sender": "Client", "Receiver": "Server"}.get(kind, kind)  # SOAP 1.2 names
    return kind, detail
