"""RestConnector against the real RestSimulator on loopback, in two agency dialects."""

from __future__ import annotations

import asyncio
import datetime as dt
import re
import socket
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from connectors.base import Action, BackendRequest, BackendResponse
from connectors.config import BackendEndpoint, Timeouts
from connectors.errors import (
    BackendRejected,
    BackendTimeout,
    BackendUnavailable,
    ProtocolError,
)
from connectors.rest import RestConnector, RestDialect
from gateway.catalog.model import Agency
from legacy.rest import NO_RECORD_REGISTER, RestSimulator
from legacy.review import review_state
from legacy.samples import CITIZENS

CITIZEN = CITIZENS[0]
REVIEW_SECONDS = 0.2
DEFAULT_TIMEOUTS = Timeouts()


def _text(mn: str, en: str) -> dict[str, str]:
    return {"mn": mn, "en": en}


def make_agency(code: str, dialect: dict[str, Any]) -> Agency:
    """A small agency with one lookup and one application, in the given dialect."""
    return Agency.model_validate(
        {
            "code": code,
            "name": _text("Туршилтын газар", "Test agency"),
            "description": _text("Туршилт", "For tests"),
            "backend": {"kind": "REST", "dialect": dialect},
            "services": [
                {
                    "code": f"{code}-001",
                    "kind": "LOOKUP",
                    "graphql_field": "buildingPermitInfo",
                    "category": "construction",
                    "name": _text("Зөвшөөрлийн лавлагаа", "Permit lookup"),
                    "description": _text("Лавлагаа", "Lookup"),
                    "output": "INFORMATION",
                    "form": [
                        {
                            "name": "registerNumber",
                            "type": "REGISTER_NUMBER",
                            "label": _text("Регистр", "Register number"),
                        },
                        {
                            "name": "asOf",
                            "type": "DATE",
                            "label": _text("Огноо", "As of"),
                        },
                    ],
                    "result": [
                        {"name": "address", "type": "TEXT", "label": _text("Хаяг", "Address")},
                        {"name": "issuedOn", "type": "DATE", "label": _text("Огноо", "Issued")},
                        {"name": "fee", "type": "AMOUNT", "label": _text("Төлбөр", "Fee")},
                        {"name": "floors", "type": "NUMBER", "label": _text("Давхар", "Floors")},
                        {"name": "active", "type": "BOOLEAN", "label": _text("Идэвх", "Active")},
                    ],
                    "binding": {
                        "operation": "barilgyn-zovshoorol",
                        "request": {"registr_dugaar": "registerNumber", "ognoo": "asOf"},
                        "response": {
                            "address": "hayag",
                            "issuedOn": "olgoson_ognoo",
                            "fee": "tulbur",
                            "floors": "davhar",
                            "active": "idevhtei",
                        },
                    },
                },
                {
                    "code": f"{code}-002",
                    "kind": "APPLICATION",
                    "graphql_field": "applyBuildingPermit",
                    "category": "construction",
                    "name": _text("Зөвшөөрөл хүсэх", "Apply for a permit"),
                    "description": _text("Хүсэлт", "Application"),
                    "output": "PERMIT",
                    "form": [
                        {
                            "name": "registerNumber",
                            "type": "REGISTER_NUMBER",
                            "label": _text("Регистр", "Register number"),
                        },
                        {
                            "name": "area",
                            "type": "NUMBER",
                            "label": _text("Талбай", "Area m²"),
                        },
                        {
                            "name": "fee",
                            "type": "AMOUNT",
                            "label": _text("Төлбөр", "Fee"),
                        },
                        {
                            "name": "requestedOn",
                            "type": "DATE",
                            "label": _text("Огноо", "Requested on"),
                        },
                        {
                            "name": "note",
                            "type": "TEXT",
                            "required": False,
                            "label": _text("Тайлбар", "Note"),
                        },
                    ],
                    "binding": {
                        "operation": "barilgyn-zovshoorol-huselt",
                        "request": {
                            "registr_dugaar": "registerNumber",
                            "talbai_m2": "area",
                            "tulbur": "fee",
                            "huselt_ognoo": "requestedOn",
                            "tailbar": "note",
                        },
                    },
                },
            ],
        }
    )


DOTTED_PAGED = {
    "date_format": "%Y.%m.%d",
    "amounts_as_strings": True,
    "paging": "page",
    "api_key_header": "X-Api-Key",
    "envelope": "ugugdul",
}
SLASHED_CURSOR = {
    "date_format": "%d/%m/%Y",
    "amounts_as_strings": False,
    "paging": "cursor",
    "api_key_header": "X-Agency-Key",
    "envelope": "result",
}


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


class Backend:
    def __init__(self, simulator: RestSimulator, connector: RestConnector) -> None:
        self.simulator = simulator
        self.connector = connector


async def _backend(
    tmp_path: Path, code: str, dialect: dict[str, Any], timeouts: Timeouts = DEFAULT_TIMEOUTS
) -> AsyncIterator[Backend]:
    agency = make_agency(code, dialect)
    simulator = RestSimulator(agency, tmp_path / code, free_port(), review_seconds=REVIEW_SECONDS)
    await simulator.start()
    connector = RestConnector(agency, simulator.endpoint(), timeouts)
    try:
        yield Backend(simulator, connector)
    finally:
        await connector.aclose()
        await simulator.stop()


@pytest.fixture
async def urb(tmp_path: Path) -> AsyncIterator[Backend]:
    async for backend in _backend(tmp_path, "URB", DOTTED_PAGED):
        yield backend


@pytest.fixture
async def edu(tmp_path: Path) -> AsyncIterator[Backend]:
    async for backend in _backend(tmp_path, "EDU", SLASHED_CURSOR):
        yield backend


@pytest.fixture
async def impatient(tmp_path: Path) -> AsyncIterator[Backend]:
    timeouts = Timeouts(connect=0.5, read=0.3, total=1.0)
    async for backend in _backend(tmp_path, "INSP", DOTTED_PAGED, timeouts):
        yield backend


def lookup(register: str = CITIZEN, as_of: dt.date = dt.date(2026, 3, 7)) -> BackendRequest:
    return BackendRequest(
        agency="X",
        service_code="X-001",
        operation="barilgyn-zovshoorol",
        action=Action.LOOKUP,
        payload={"registr_dugaar": register, "ognoo": as_of},
    )


def submit(key: str, fee: int = 125_000) -> BackendRequest:
    return BackendRequest(
        agency="X",
        service_code="X-002",
        operation="barilgyn-zovshoorol-huselt",
        action=Action.SUBMIT,
        payload={
            "registr_dugaar": CITIZEN,
            "talbai_m2": 84.5,
            "tulbur": fee,
            "huselt_ognoo": dt.date(2026, 4, 1),
            "tailbar": None,
        },
        idempotency_key=key,
    )


def status(reference: str) -> BackendRequest:
    return BackendRequest(
        agency="X",
        service_code="X-002",
        operation="barilgyn-zovshoorol-huselt",
        action=Action.STATUS,
        reference=reference,
    )


# -- LOOKUP ------------------------------------------------------------------------------------


async def test_lookup_dotted_dates_and_string_amounts(urb: Backend) -> None:
    response = await urb.connector.send(lookup())

    data = response.data
    assert set(data) == {"hayag", "olgoson_ognoo", "tulbur", "davhar", "idevhtei"}
    assert re.fullmatch(r"\d{4}\.\d{2}\.\d{2}", data["olgoson_ognoo"])
    dt.datetime.strptime(data["olgoson_ognoo"], "%Y.%m.%d")
    assert isinstance(data["tulbur"], str) and data["tulbur"].isdigit()
    assert isinstance(data["davhar"], int)
    assert isinstance(data["idevhtei"], bool)
    assert isinstance(data["hayag"], str) and data["hayag"]
    # Deterministic per citizen, different between citizens.
    assert (await urb.connector.send(lookup())).data == data
    assert (await urb.connector.send(lookup(CITIZENS[1]))).data != data


async def test_lookup_slashed_dates_and_numeric_amounts(edu: Backend) -> None:
    data = (await edu.connector.send(lookup())).data

    assert re.fullmatch(r"\d{2}/\d{2}/\d{4}", data["olgoson_ognoo"])
    dt.datetime.strptime(data["olgoson_ognoo"], "%d/%m/%Y")
    assert isinstance(data["tulbur"], int) and data["tulbur"] >= 1000


async def test_lookup_of_missing_record_is_not_found(urb: Backend) -> None:
    response = await urb.connector.send(lookup(NO_RECORD_REGISTER))

    assert response == BackendResponse(status="NOT_FOUND")


async def test_simulator_rejects_dates_not_in_its_dialect(urb: Backend) -> None:
    endpoint = urb.simulator.endpoint()
    headers = {"X-Api-Key": endpoint.api_key or ""}
    async with httpx.AsyncClient(base_url=endpoint.url + "/", headers=headers) as client:
        iso = await client.get(
            "barilgyn-zovshoorol", params={"registr_dugaar": CITIZEN, "ognoo": "2026-03-07"}
        )
        numeric_amount = await client.post(
            "barilgyn-zovshoorol-huselt",
            json={
                "registr_dugaar": CITIZEN,
                "talbai_m2": "84.5",
                "tulbur": 125000,
                "huselt_ognoo": "2026.04.01",
            },
            headers={"Idempotency-Key": "k-format"},
        )

    assert iso.status_code == 400
    assert iso.json()["error"]["code"] == "bad_date"
    assert CITIZEN not in iso.text
    assert numeric_amount.status_code == 400
    assert numeric_amount.json()["error"]["code"] == "bad_amount"
    assert urb.simulator.filings() == []


async def test_unknown_operation_is_rejected_not_mistaken_for_no_record(urb: Backend) -> None:
    request = BackendRequest(
        agency="URB",
        service_code="URB-009",
        operation="baihgui-uildel",
        action=Action.LOOKUP,
        payload={"registr_dugaar": CITIZEN},
    )

    with pytest.raises(BackendRejected, match="unknown_operation"):
        await urb.connector.send(request)


# -- SUBMIT ------------------------------------------------------------------------------------


@pytest.mark.parametrize("dialect", [DOTTED_PAGED, SLASHED_CURSOR], ids=["page", "cursor"])
async def test_submit_twice_with_one_key_files_once(
    tmp_path: Path, dialect: dict[str, Any]
) -> None:
    async for backend in _backend(tmp_path, "GOV", dialect):
        first = await backend.connector.send(submit("key-1"))
        second = await backend.connector.send(submit("key-1"))
        other = await backend.connector.send(submit("key-2"))

        assert first.status == second.status == "DELIVERED"
        assert first.reference is not None and first.reference.startswith("GOV-")
        assert second.reference == first.reference
        assert other.reference != first.reference
        filings = backend.simulator.filings()
        assert [f.idempotency_key for f in filings] == ["key-1", "key-2"]
        stored = filings[0].payload
        fmt = dialect["date_format"]
        assert stored["huselt_ognoo"] == dt.date(2026, 4, 1).strftime(fmt)
        if dialect["amounts_as_strings"]:
            assert stored["tulbur"] == "125000"
            assert stored["talbai_m2"] == "84.5"
        else:
            assert stored["tulbur"] == 125000
            assert stored["talbai_m2"] == 84.5
        assert "tailbar" not in stored


async def test_concurrent_retries_of_one_key_file_once(edu: Backend) -> None:
    answers = await asyncio.gather(*(edu.connector.send(submit("key-race")) for _ in range(10)))

    assert len({answer.reference for answer in answers}) == 1
    assert len(edu.simulator.filings()) == 1


async def test_repeated_key_answers_200_with_the_same_reference(urb: Backend) -> None:
    endpoint = urb.simulator.endpoint()
    body = {
        "registr_dugaar": CITIZEN,
        "talbai_m2": "12",
        "tulbur": "5000",
        "huselt_ognoo": "2026.04.01",
    }
    headers = {"X-Api-Key": endpoint.api_key or "", "Idempotency-Key": "k-raw"}
    async with httpx.AsyncClient(base_url=endpoint.url + "/", headers=headers) as client:
        first = await client.post("barilgyn-zovshoorol-huselt", json=body)
        again = await client.post("barilgyn-zovshoorol-huselt", json=body)

    assert (first.status_code, again.status_code) == (201, 200)
    assert first.json() == again.json()
    assert first.json()["ugugdul"]["tuluv"] == "DELIVERED"


async def test_filings_survive_a_restart(tmp_path: Path) -> None:
    async for backend in _backend(tmp_path, "GOV", DOTTED_PAGED):
        reference = (await backend.connector.send(submit("key-r"))).reference
        assert reference is not None
        await backend.simulator.stop()
        await backend.simulator.start()

        assert (await backend.connector.send(submit("key-r"))).reference == reference
        assert (await backend.connector.send(status(reference))).status is not None
        assert len(backend.simulator.filings()) == 1


# -- STATUS ------------------------------------------------------------------------------------


def _final_state(key: str) -> tuple[str, str | None]:
    return review_state(key, 10.0, 1.0)


@pytest.mark.parametrize("dialect", [DOTTED_PAGED, SLASHED_CURSOR], ids=["page", "cursor"])
async def test_status_walks_every_page_and_progresses(
    tmp_path: Path, dialect: dict[str, Any]
) -> None:
    # An application that ends ISSUED has four distinct events: two pages of two.
    key = next(k for k in (f"key-{i}" for i in range(100)) if _final_state(k)[0] == "ISSUED")
    async for backend in _backend(tmp_path, "URB", dialect):
        reference = (await backend.connector.send(submit(key))).reference
        assert reference is not None

        first = await backend.connector.send(status(reference))
        assert (first.reference, first.status, first.note) == (reference, "DELIVERED", None)

        seen = [first.status]
        for _ in range(40):
            await asyncio.sleep(REVIEW_SECONDS / 4)
            current = (await backend.connector.send(status(reference))).status
            if current != seen[-1]:
                seen.append(current)
            if current == "ISSUED":
                break
        assert seen == ["DELIVERED", "IN_REVIEW", "APPROVED", "ISSUED"]

        # The last event sits on the second page, so ISSUED proves the walk reached it.
        endpoint = backend.simulator.endpoint()
        dialect_ = RestDialect(**dialect)
        headers = {dialect_.api_key_header: endpoint.api_key or ""}
        url = f"{endpoint.url}/applications/{reference}/events"
        async with httpx.AsyncClient(headers=headers) as client:
            first_page = (await client.get(url)).json()
        assert len(first_page[dialect_.envelope]) == 2
        assert [e["tuluv"] for e in first_page[dialect_.envelope]] == ["DELIVERED", "IN_REVIEW"]
        if dialect_.paging == "page":
            assert first_page["total_pages"] == 2
        else:
            assert first_page["next_cursor"]


async def test_status_reports_rejection_reason(edu: Backend) -> None:
    key = next(k for k in (f"key-{i}" for i in range(200)) if _final_state(k)[0] == "REJECTED")
    reference = (await edu.connector.send(submit(key))).reference
    assert reference is not None

    await asyncio.sleep(REVIEW_SECONDS * 2.5)
    response = await edu.connector.send(status(reference))

    assert (response.status, response.note) == _final_state(key)
    assert response.note


async def test_status_of_unknown_reference_is_rejected(urb: Backend) -> None:
    with pytest.raises(BackendRejected, match="404"):
        await urb.connector.send(status("URB-2026-999999"))


# -- failures ----------------------------------------------------------------------------------


async def test_wrong_api_key_is_rejected(urb: Backend) -> None:
    endpoint = BackendEndpoint(url=urb.simulator.endpoint().url, api_key="dev-api-wrong")
    connector = RestConnector(urb.simulator.agency, endpoint)
    try:
        with pytest.raises(BackendRejected, match="401"):
            await connector.send(lookup())
    finally:
        await connector.aclose()


async def test_slow_backend_times_out(impatient: Backend) -> None:
    impatient.simulator.faults.delay = 1.0

    with pytest.raises(BackendTimeout):
        await impatient.connector.send(lookup())
    impatient.simulator.faults.reset()


async def test_overall_timeout_bounds_a_long_status_walk(tmp_path: Path) -> None:
    # Each page answers within the read timeout; the walk over all pages does not.
    timeouts = Timeouts(connect=0.5, read=1.0, total=0.5)
    async for backend in _backend(tmp_path, "INSP", DOTTED_PAGED, timeouts):
        reference = (await backend.connector.send(submit("key-walk"))).reference
        assert reference is not None
        await asyncio.sleep(REVIEW_SECONDS * 2.5)  # three events: two pages
        backend.simulator.faults.delay = 0.3

        with pytest.raises(BackendTimeout, match="overall"):
            await backend.connector.send(status(reference))
        backend.simulator.faults.reset()


async def test_backend_down_is_unavailable(urb: Backend) -> None:
    urb.simulator.faults.down = True

    with pytest.raises(BackendUnavailable, match="503"):
        await urb.connector.send(lookup())
    with pytest.raises(BackendUnavailable):
        await urb.connector.send(submit("key-down"))
    assert urb.simulator.filings() == []


async def test_garbage_body_is_a_protocol_error(urb: Backend) -> None:
    urb.simulator.faults.garbage = True

    with pytest.raises(ProtocolError):
        await urb.connector.send(lookup())
    with pytest.raises(ProtocolError):
        await urb.connector.send(status("URB-2026-000001"))


async def test_nothing_listening_is_unavailable(tmp_path: Path) -> None:
    agency = make_agency("GOV", DOTTED_PAGED)
    endpoint = RestSimulator.endpoint_for(agency, tmp_path, free_port())
    connector = RestConnector(agency, endpoint, Timeouts(connect=1.0, read=1.0, total=2.0))
    try:
        with pytest.raises(BackendUnavailable, match="ClientConnectorError"):
            await connector.send(lookup())
    finally:
        await connector.aclose()
        await connector.aclose()  # twice is fine


async def test_errors_never_carry_request_values(urb: Backend) -> None:
    urb.simulator.faults.down = True
    with pytest.raises(BackendUnavailable) as down:
        await urb.connector.send(lookup())
    urb.simulator.faults.reset()

    bad_key = BackendEndpoint(url=urb.simulator.endpoint().url, api_key="nope")
    connector = RestConnector(urb.simulator.agency, bad_key)
    try:
        with pytest.raises(BackendRejected) as rejected:
            await connector.send(submit("key-secret"))
    finally:
        await connector.aclose()

    for error in (down.value, rejected.value):
        text = str(error)
        assert CITIZEN not in text and "2026" not in text and "key-secret" not in text


def test_dialect_typos_fail_at_construction() -> None:
    with pytest.raises(ValueError, match="unknown REST dialect keys"):
        RestDialect.of(make_agency("GOV", {"date_fromat": "%Y.%m.%d"}))
    with pytest.raises(ValueError, match="paging"):
        RestDialect.of(make_agency("GOV", {"paging": "offset"}))
    assert RestDialect.of(make_agency("GOV", {})) == RestDialect()
