"""The SOAP connector against the real SOAP simulator on loopback."""

from __future__ import annotations

import asyncio
import datetime as dt
import decimal
import functools
import os
import socket
import stat
import threading
import time
from collections.abc import AsyncIterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import aiohttp
import pytest
import zeep.exceptions

from connectors import soap_signing
from connectors.base import Action, BackendRequest
from connectors.config import BackendEndpoint, Timeouts
from connectors.errors import (
    BackendRejected,
    BackendTimeout,
    BackendUnavailable,
    MappingError,
    ProtocolError,
)
from connectors.mapping import from_backend, to_backend
from connectors.soap import SoapConnector
from gateway.catalog.loader import load_catalog
from gateway.catalog.model import Agency, BackendKind, ServiceKind
from legacy.keys import ensure_keypair
from legacy.samples import CITIZENS, sample_form
from legacy.soap import SoapSimulator

CATALOG = Path(__file__).resolve().parents[2] / "catalog"
TIMEOUTS = Timeouts(connect=2.0, read=2.0, total=8.0)  # roomy: CI machines are busy
REVIEW_SECONDS = 0.3


def _text(en: str) -> dict[str, str]:
    return {"mn": f"{en} (mn)", "en": en}


def _field(name: str, kind: str, required: bool = True) -> dict[str, Any]:
    return {"name": name, "type": kind, "label": _text(name), "required": required}


def _result(name: str, kind: str) -> dict[str, Any]:
    return {"name": name, "type": kind, "label": _text(name)}


LAND = Agency.model_validate(
    {
        "code": "LAND",
        "name": _text("Land agency"),
        "description": _text("Cadastre and land rights"),
        "backend": {"kind": "SOAP"},
        "services": [
            {
                "code": "LAND-001",
                "kind": "LOOKUP",
                "graphql_field": "parcelInfo",
                "category": "land",
                "name": _text("Parcel information"),
                "description": _text("Who holds a parcel and since when"),
                "output": "INFORMATION",
                "form": [
                    _field("parcelNumber", "PARCEL_NUMBER"),
                    _field("registerNumber", "REGISTER_NUMBER"),
                ],
                "result": [
                    _result("holderName", "TEXT"),
                    _result("grantedOn", "DATE"),
                    _result("areaSquareMeters", "NUMBER"),
                    _result("landFee", "AMOUNT"),
                    _result("mortgaged", "BOOLEAN"),
                ],
                "binding": {
                    "operation": "WS100301_getParcelInfo",
                    "request": {"parcelNo": "parcelNumber", "regNum": "registerNumber"},
                    "response": {
                        "holderName": "ownerName",
                        "grantedOn": "issueDate",
                        "areaSquareMeters": "area",
                        "landFee": "feeAmount",
                        "mortgaged": "isMortgaged",
                    },
                },
            },
            {
                "code": "LAND-002",
                "kind": "LOOKUP",
                "graphql_field": "cadastreValue",
                "category": "land",
                "name": _text("Cadastre value"),
                "description": _text("Assessed value of a parcel"),
                "output": "INFORMATION",
                "form": [_field("parcelNumber", "PARCEL_NUMBER")],
                "result": [_result("value", "AMOUNT")],
                "binding": {
                    "operation": "WS100302_getCadastreValue",
                    "request": {"parcelNo": "parcelNumber"},
                    "response": {"value": "cadastreValue"},
                },
            },
            {
                "code": "LAND-003",
                "kind": "APPLICATION",
                "graphql_field": "transferParcel",
                "category": "land",
                "name": _text("Parcel transfer"),
                "description": _text("Transfer a land right to a buyer"),
                "fee": 5000,
                "processing_days": 10,
                "output": "DECISION",
                "form": [
                    _field("parcelNumber", "PARCEL_NUMBER"),
                    _field("buyerRegister", "REGISTER_NUMBER"),
                    _field("transferDate", "DATE"),
                    _field("price", "AMOUNT"),
                    _field("remark", "TEXT", required=False),
                ],
                "binding": {
                    "operation": "WS100401_submitParcelTransfer",
                    "request": {
                        "parcelNo": "parcelNumber",
                        "buyerRegNum": "buyerRegister",
                        "transferDate": "transferDate",
                        "priceAmount": "price",
                        "remark": "remark",
                    },
                },
            },
        ],
    }
)

PARCEL = "18123456789"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
    return port


def lookup(payload: dict[str, Any], operation: str = "WS100301_getParcelInfo") -> BackendRequest:
    return BackendRequest("LAND", "LAND-001", operation, Action.LOOKUP, payload)


def submit(key: str, buyer: str = CITIZENS[1]) -> BackendRequest:
    payload = {
        "parcelNo": PARCEL,
        "buyerRegNum": buyer,
        "transferDate": dt.date(2026, 3, 5),
        "priceAmount": 125_000_000,
        "remark": None,
    }
    return BackendRequest(
        "LAND",
        "LAND-003",
        "WS100401_submitParcelTransfer",
        Action.SUBMIT,
        payload,
        idempotency_key=key,
    )


def status(reference: str) -> BackendRequest:
    return BackendRequest(
        "LAND", "LAND-003", "WS100401_submitParcelTransfer", Action.STATUS, reference=reference
    )


@pytest.fixture
async def sim(tmp_path: Path) -> AsyncIterator[SoapSimulator]:
    simulator = SoapSimulator(LAND, tmp_path / "land", free_port(), REVIEW_SECONDS)
    await simulator.start()
    yield simulator
    await simulator.stop()


@pytest.fixture
async def conn(sim: SoapSimulator) -> AsyncIterator[SoapConnector]:
    connector = SoapConnector(LAND, sim.endpoint(), TIMEOUTS)
    yield connector
    await connector.aclose()


async def test_lookup_answers_typed_values_per_citizen(conn: SoapConnector) -> None:
    first = await conn.send(lookup({"parcelNo": PARCEL, "regNum": CITIZENS[0]}))
    data = first.data
    assert set(data) == {"ownerName", "issueDate", "area", "feeAmount", "isMortgaged"}
    assert isinstance(data["ownerName"], str) and data["ownerName"]
    assert isinstance(data["issueDate"], dt.date)
    assert isinstance(data["area"], int)
    assert isinstance(data["feeAmount"], decimal.Decimal) and data["feeAmount"] >= 1000
    assert isinstance(data["isMortgaged"], bool)
    again = await conn.send(lookup({"parcelNo": PARCEL, "regNum": CITIZENS[0]}))
    assert again.data == data
    answers = [(await conn.send(lookup({"parcelNo": PARCEL, "regNum": c}))).data for c in CITIZENS]
    assert len({tuple(sorted(a.items())) for a in answers}) == len(CITIZENS)


async def test_single_result_lookup_keeps_its_element_name(conn: SoapConnector) -> None:
    answer = await conn.send(lookup({"parcelNo": PARCEL}, "WS100302_getCadastreValue"))
    assert list(answer.data) == ["cadastreValue"]
    assert isinstance(answer.data["cadastreValue"], decimal.Decimal)


async def test_missing_record_is_not_found(conn: SoapConnector) -> None:
    answer = await conn.send(lookup({"parcelNo": "18000000000", "regNum": CITIZENS[0]}))
    assert answer.status == "NOT_FOUND"
    assert answer.data == {}


async def test_submit_twice_with_one_key_files_once(
    sim: SoapSimulator, conn: SoapConnector
) -> None:
    first = await conn.send(submit("key-1"))
    second = await conn.send(submit("key-1"))
    assert first.status == second.status == "DELIVERED"
    assert first.reference and first.reference.startswith("LAND-")
    assert second.reference == first.reference
    filings = sim.filings()
    assert [(f.reference, f.idempotency_key) for f in filings] == [(first.reference, "key-1")]
    assert filings[0].operation == "WS100401_submitParcelTransfer"
    assert filings[0].payload["buyerRegNum"] == CITIZENS[1]
    assert filings[0].payload["transferDate"] == "2026-03-05"
    assert filings[0].payload["priceAmount"] == "125000000"
    other = await conn.send(submit("key-2"))
    assert other.reference != first.reference
    assert len(sim.filings()) == 2


async def test_status_moves_from_delivered_to_in_review(tmp_path: Path) -> None:
    # A review step of its own, long enough that a status call slowed by a
    # busy machine cannot step over the whole IN_REVIEW window.
    review = 2.0
    simulator = SoapSimulator(LAND, tmp_path / "land", free_port(), review)
    await simulator.start()
    conn = SoapConnector(LAND, simulator.endpoint(), TIMEOUTS)
    try:
        filed = await conn.send(submit("key-review"))
        assert filed.reference is not None
        seen = [(await conn.send(status(filed.reference))).status]
        deadline = time.monotonic() + 5 * review
        while seen[-1] == "DELIVERED" and time.monotonic() < deadline:
            await asyncio.sleep(review / 10)
            answer = await conn.send(status(filed.reference))
            assert answer.reference == filed.reference
            seen.append(answer.status)
    finally:
        await conn.aclose()
        await simulator.stop()
    assert seen[0] == "DELIVERED"
    assert seen[-1] == "IN_REVIEW"


async def test_unknown_reference_is_rejected(conn: SoapConnector) -> None:
    with pytest.raises(BackendRejected) as caught:
        await conn.send(status("LAND-1999-000042"))
    assert isinstance(caught.value.__cause__, zeep.exceptions.Fault)


async def test_schema_invalid_request_is_rejected(conn: SoapConnector) -> None:
    # zeep passes a str for an xs:date through unchecked; the agency's schema refuses it.
    bad = submit("key-bad")
    bad = BackendRequest(
        bad.agency,
        bad.service_code,
        bad.operation,
        bad.action,
        {**bad.payload, "transferDate": "5 March"},
        idempotency_key="key-bad",
    )
    with pytest.raises(BackendRejected):
        await conn.send(bad)


async def test_wrong_signature_is_rejected_and_nothing_filed(
    sim: SoapSimulator, tmp_path: Path
) -> None:
    other_private, _ = ensure_keypair(tmp_path / "other-keys")
    endpoint = sim.endpoint()
    forged = BackendEndpoint(
        endpoint.url, access_token=endpoint.access_token, signing_key=other_private
    )
    connector = SoapConnector(LAND, forged, TIMEOUTS)
    try:
        with pytest.raises(BackendRejected) as caught:
            await connector.send(submit("key-forged"))
        assert "Client" in str(caught.value)
        with pytest.raises(BackendRejected):
            await connector.send(lookup({"parcelNo": PARCEL, "regNum": CITIZENS[0]}))
    finally:
        await connector.aclose()
    assert sim.filings() == []


async def test_wrong_access_token_is_rejected(sim: SoapSimulator) -> None:
    endpoint = sim.endpoint()
    wrong = BackendEndpoint(
        endpoint.url, access_token="dev-xyp-tax", signing_key=endpoint.signing_key
    )
    connector = SoapConnector(LAND, wrong, TIMEOUTS)
    try:
        with pytest.raises(BackendRejected):
            await connector.send(lookup({"parcelNo": PARCEL, "regNum": CITIZENS[0]}))
    finally:
        await connector.aclose()


@pytest.mark.parametrize("skew", [-301.0, 301.0])
async def test_timestamp_outside_window_is_rejected(
    conn: SoapConnector, monkeypatch: pytest.MonkeyPatch, skew: float
) -> None:
    request = lookup({"parcelNo": PARCEL, "regNum": CITIZENS[0]})
    await conn.send(request)  # the same connector is accepted with a fresh time stamp
    skewed = functools.partial(_headers_at, skew)
    monkeypatch.setattr(soap_signing, "headers", skewed)
    with pytest.raises(BackendRejected):
        await conn.send(request)


_fresh_headers = soap_signing.headers


def _headers_at(skew: float, key: Any, token: str, now: float | None = None) -> dict[str, str]:
    return _fresh_headers(key, token, now=time.time() + skew)


async def test_slow_agency_times_out_on_read(sim: SoapSimulator, conn: SoapConnector) -> None:
    request = lookup({"parcelNo": PARCEL, "regNum": CITIZENS[0]})
    await conn.send(request)
    sim.faults.delay = TIMEOUTS.read * 3
    started = time.monotonic()
    with pytest.raises(BackendTimeout) as caught:
        await conn.send(request)
    assert time.monotonic() - started < TIMEOUTS.read * 2
    assert isinstance(caught.value.__cause__, aiohttp.ServerTimeoutError)


async def test_overall_timeout_bounds_the_call(sim: SoapSimulator) -> None:
    # total: room for the first call's WSDL load on a busy machine; the
    # agency's delay is far beyond both it and the read timeout.
    connector = SoapConnector(LAND, sim.endpoint(), Timeouts(connect=1.0, read=10.0, total=1.5))
    try:
        await connector.send(lookup({"parcelNo": PARCEL}, "WS100302_getCadastreValue"))
        sim.faults.delay = 8.0
        started = time.monotonic()
        with pytest.raises(BackendTimeout) as caught:
            await connector.send(lookup({"parcelNo": PARCEL}, "WS100302_getCadastreValue"))
        assert time.monotonic() - started < 5.0
        assert isinstance(caught.value.__cause__, TimeoutError)
    finally:
        await connector.aclose()


async def test_down_agency_answers_a_server_fault(sim: SoapSimulator, conn: SoapConnector) -> None:
    await conn.send(submit("key-before"))
    sim.faults.down = True
    with pytest.raises(BackendUnavailable) as caught:
        await conn.send(submit("key-while-down"))
    assert isinstance(caught.value.__cause__, zeep.exceptions.Fault)
    assert [f.idempotency_key for f in sim.filings()] == ["key-before"]


async def test_wsdl_unavailable_then_loaded_on_a_later_send(
    sim: SoapSimulator, conn: SoapConnector
) -> None:
    sim.faults.down = True
    with pytest.raises(BackendUnavailable):
        await conn.send(lookup({"parcelNo": PARCEL}, "WS100302_getCadastreValue"))
    sim.faults.reset()
    answer = await conn.send(lookup({"parcelNo": PARCEL}, "WS100302_getCadastreValue"))
    assert "cadastreValue" in answer.data


async def test_garbage_wsdl_is_a_protocol_error_until_it_is_fixed(
    sim: SoapSimulator, conn: SoapConnector
) -> None:
    sim.faults.garbage = True
    with pytest.raises(ProtocolError) as caught:
        await conn.send(lookup({"parcelNo": PARCEL}, "WS100302_getCadastreValue"))
    assert isinstance(caught.value.__cause__, zeep.exceptions.XMLSyntaxError)
    sim.faults.reset()
    answer = await conn.send(lookup({"parcelNo": PARCEL}, "WS100302_getCadastreValue"))
    assert "cadastreValue" in answer.data


async def test_refused_connection_is_unavailable(sim: SoapSimulator, conn: SoapConnector) -> None:
    await conn.send(lookup({"parcelNo": PARCEL}, "WS100302_getCadastreValue"))
    await sim.stop()
    with pytest.raises(BackendUnavailable) as caught:
        await conn.send(lookup({"parcelNo": PARCEL}, "WS100302_getCadastreValue"))
    assert isinstance(caught.value.__cause__, aiohttp.ClientConnectionError)


async def test_garbage_body_is_a_protocol_error(sim: SoapSimulator, conn: SoapConnector) -> None:
    await conn.send(lookup({"parcelNo": PARCEL}, "WS100302_getCadastreValue"))
    sim.faults.garbage = True
    with pytest.raises(ProtocolError):
        await conn.send(submit("key-garbage"))
    assert sim.filings() == []


MALFORMED = {
    "truncated": b"<?xml version='1.0'?><soap:Envelope xmlns:soap="
    b"'http://schemas.xmlsoap.org/soap/envelope/'><soap:Body>",
    "not an envelope": b"<?xml version='1.0'?><html><body>Service error</body></html>",
}


@pytest.mark.parametrize("body", MALFORMED.values(), ids=MALFORMED.keys())
async def test_malformed_xml_is_a_protocol_error(
    sim: SoapSimulator, conn: SoapConnector, body: bytes
) -> None:
    await conn.send(lookup({"parcelNo": PARCEL}, "WS100302_getCadastreValue"))
    await sim.stop()
    with _fixed_answer(sim.port, body), pytest.raises(ProtocolError):
        await conn.send(lookup({"parcelNo": PARCEL}, "WS100302_getCadastreValue"))


class _FixedAnswer(BaseHTTPRequestHandler):
    body = b""

    def do_POST(self) -> None:
        self.rfile.read(int(self.headers.get("Content-Length") or 0))
        self.send_response(200)
        self.send_header("Content-Type", "text/xml; charset=utf-8")
        self.send_header("Content-Length", str(len(self.body)))
        self.end_headers()
        self.wfile.write(self.body)

    def log_message(self, format: str, *args: Any) -> None:
        pass


class _fixed_answer:
    """A stand-in agency on ``port`` that answers every POST with ``body``."""

    def __init__(self, port: int, body: bytes) -> None:
        handler = type("Handler", (_FixedAnswer,), {"body": body})
        self._server = ThreadingHTTPServer(("127.0.0.1", port), handler)
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)

    def __enter__(self) -> None:
        self._thread.start()

    def __exit__(self, *exc: object) -> None:
        self._server.shutdown()
        self._server.server_close()
        self._thread.join()


async def test_operation_missing_from_wsdl_is_a_mapping_error(conn: SoapConnector) -> None:
    with pytest.raises(MappingError):
        await conn.send(lookup({"parcelNo": PARCEL}, "WS999999_noSuchOperation"))


async def test_records_survive_a_restart(sim: SoapSimulator, tmp_path: Path) -> None:
    connector = SoapConnector(LAND, sim.endpoint(), TIMEOUTS)
    try:
        filed = await connector.send(submit("key-restart"))
        await sim.stop()
        assert [f.idempotency_key for f in sim.filings()] == ["key-restart"]
        await sim.start()
        again = await connector.send(submit("key-restart"))
        assert again.reference == filed.reference
        assert filed.reference is not None
        answer = await connector.send(status(filed.reference))
        assert answer.status in {"DELIVERED", "IN_REVIEW", "APPROVED", "NEEDS_INFO", "REJECTED"}
    finally:
        await connector.aclose()
    assert len(sim.filings()) == 1


async def test_aclose_twice_is_fine(sim: SoapSimulator) -> None:
    connector = SoapConnector(LAND, sim.endpoint(), TIMEOUTS)
    await connector.aclose()
    await connector.aclose()


def test_keypair_is_made_once_with_a_private_mode(tmp_path: Path) -> None:
    private, public = ensure_keypair(tmp_path / "keys")
    assert stat.S_IMODE(os.stat(private).st_mode) == 0o600
    before = private.read_bytes(), public.read_bytes()
    assert ensure_keypair(tmp_path / "keys") == (private, public)
    assert (private.read_bytes(), public.read_bytes()) == before
    key = soap_signing.load_private_key(private)
    signature = soap_signing.sign(key, "dev-xyp-land", "1700000000")
    verify_key = soap_signing.load_public_key(public)
    assert soap_signing.verify(verify_key, "dev-xyp-land", "1700000000", signature)
    assert not soap_signing.verify(verify_key, "dev-xyp-land", "1700000001", signature)
    assert not soap_signing.verify(verify_key, "dev-xyp-land", "1700000000", "not base64!")


async def test_catalog_soap_agencies_serve_every_binding(tmp_path: Path) -> None:
    agencies = [a for a in load_catalog(CATALOG).agencies if a.backend.kind is BackendKind.SOAP]
    assert [a.code for a in agencies] == ["LAND", "OSS", "PTR", "TAX"]
    for agency in agencies:
        await _serve_every_binding(agency, tmp_path)


async def _serve_every_binding(agency: Agency, tmp_path: Path) -> None:
    simulator = SoapSimulator(agency, tmp_path / agency.code.lower(), free_port(), 0.2)
    await simulator.start()
    connector = SoapConnector(agency, simulator.endpoint(), TIMEOUTS)
    try:
        for service in agency.services:
            form = sample_form([f.model_dump(mode="json") for f in service.form])
            lookup = service.kind is ServiceKind.LOOKUP
            request = BackendRequest(
                agency.code,
                service.code,
                service.binding.operation,
                Action.LOOKUP if lookup else Action.SUBMIT,
                to_backend(service, form),
                idempotency_key=f"key-{service.code}",
            )
            answer = await connector.send(request)
            if lookup:
                values = from_backend(agency, service, answer.data)
                assert set(values) == {r.name for r in service.result}, service.code
            else:
                assert answer.reference and answer.status == "DELIVERED", service.code
    finally:
        await connector.aclose()
        await simulator.stop()
