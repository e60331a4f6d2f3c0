"""The file-exchange connector against the simulated batch job, in one event loop."""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import errno
import os
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

import connectors.files as files_module
from connectors.base import Action, BackendRequest
from connectors.config import BackendEndpoint, Timeouts
from connectors.errors import (
    BackendRejected,
    BackendTimeout,
    BackendUnavailable,
    MappingError,
    ProtocolError,
)
from connectors.files import (
    Document,
    FileConnector,
    FileDialect,
    Header,
    Incomplete,
    exchange_path,
)
from gateway.catalog.model import (
    Agency,
    Backend,
    BackendKind,
    Binding,
    FieldType,
    FormField,
    Output,
    ResultField,
    Service,
    ServiceKind,
    Text,
)
from legacy.fakedata import fake_value
from legacy.files import FileSimulator, lookup_seed
from legacy.review import review_state
from legacy.samples import CITIZENS

WELF_DIALECT = {"format": "fixed", "encoding": "cp1251", "field_width": 40}
ENV_DIALECT = {"format": "csv", "encoding": "utf-8", "delimiter": ";"}
FAST = Timeouts(total=3.0)


def _t(text: str) -> Text:
    return Text(mn=text, en=text)


def _form(name: str, kind: FieldType) -> FormField:
    return FormField(name=name, type=kind, label=_t(name))


def _result(name: str, kind: FieldType) -> ResultField:
    return ResultField(name=name, type=kind, label=_t(name))


Fields = dict[str, tuple[str, FieldType]]  # back-end name -> (our name, type)


def _lookup(code: str, field: str, operation: str, form: Fields, result: Fields) -> Service:
    return Service(
        code=code,
        kind=ServiceKind.LOOKUP,
        graphql_field=field,
        category="welfare",
        name=_t(field),
        description=_t(field),
        output=Output.INFORMATION,
        form=tuple(_form(name, kind) for name, kind in form.values()),
        result=tuple(_result(name, kind) for name, kind in result.values()),
        binding=Binding(
            operation=operation,
            request={backend: name for backend, (name, _) in form.items()},
            response={name: backend for backend, (name, _) in result.items()},
        ),
    )


def _application(code: str, field: str, operation: str, form: Fields) -> Service:
    return Service(
        code=code,
        kind=ServiceKind.APPLICATION,
        graphql_field=field,
        category="welfare",
        name=_t(field),
        description=_t(field),
        output=Output.DECISION,
        form=tuple(_form(name, kind) for name, kind in form.values()),
        binding=Binding(
            operation=operation,
            request={backend: name for backend, (name, _) in form.items()},
        ),
    )


def _agency(code: str, dialect: dict[str, Any], services: tuple[Service, ...]) -> Agency:
    return Agency(
        code=code,
        name=_t(f"{code} агентлаг"),
        description=_t("Туршилтын агентлаг"),
        backend=Backend(kind=BackendKind.FILE, dialect=dialect),
        services=services,
    )


WELF = _agency(
    "WELF",
    WELF_DIALECT,
    (
        _lookup(
            "WELF-001",
            "foodStamp",
            "FSTAMP",
            {"REG_NO": ("registerNumber", FieldType.REGISTER_NUMBER)},
            {
                "HH_NAME": ("householdName", FieldType.TEXT),
                "DISTRICT": ("district", FieldType.TEXT),
                "AMOUNT": ("monthlyAmount", FieldType.AMOUNT),
                "VALID_TO": ("validUntil", FieldType.DATE),
                "ELIGIBLE": ("eligible", FieldType.BOOLEAN),
            },
        ),
        _application(
            "WELF-002",
            "childMoney",
            "CHMONEY",
            {
                "REG_NO": ("registerNumber", FieldType.REGISTER_NUMBER),
                "CHILD_NAME": ("childName", FieldType.TEXT),
                "BIRTH_DATE": ("birthDate", FieldType.DATE),
                "CHILDREN": ("children", FieldType.NUMBER),
                "SINGLE": ("singleParent", FieldType.BOOLEAN),
            },
        ),
    ),
)

ENV = _agency(
    "ENV",
    ENV_DIALECT,
    (
        _lookup(
            "ENV-001",
            "treePermit",
            "PERMIT",
            {
                "REG_NO": ("registerNumber", FieldType.REGISTER_NUMBER),
                "PERMIT_NO": ("permitNumber", FieldType.TEXT),
            },
            {
                "HOLDER": ("holderName", FieldType.TEXT),
                "PLATE": ("truckPlate", FieldType.PLATE_NUMBER),
                "ISSUED": ("issuedOn", FieldType.DATE),
                "FEE": ("fee", FieldType.AMOUNT),
            },
        ),
        _application(
            "ENV-002",
            "treeCut",
            "TREECUT",
            {
                "REG_NO": ("registerNumber", FieldType.REGISTER_NUMBER),
                "ADDRESS": ("address", FieldType.TEXT),
            },
        ),
    ),
)


@contextlib.asynccontextmanager
async def running(
    agency: Agency, workdir: Path, review_seconds: float = 3.0
) -> AsyncIterator[tuple[FileSimulator, FileConnector]]:
    simulator = FileSimulator(agency, workdir, 0, review_seconds, poll_interval=0.01)
    await simulator.start()
    connector = FileConnector(agency, simulator.endpoint(), FAST)
    try:
        yield simulator, connector
    finally:
        await connector.aclose()
        await simulator.stop()


def _expected(agency: Agency, service: Service, asked: dict[str, str]) -> dict[str, Any]:
    dialect = FileDialect.of(agency)
    types = {f.name: f.type for f in service.result}
    expected = {}
    for name, backend in service.binding.response.items():
        seed = lookup_seed(agency.code, service.binding.operation, asked, backend)
        expected[backend] = dialect.to_text(fake_value(types[name], seed))
    return expected


def _lookup_request(agency: Agency, payload: dict[str, Any]) -> BackendRequest:
    service = agency.services[0]
    return BackendRequest(
        agency.code, service.code, service.binding.operation, Action.LOOKUP, payload
    )


def _submit(agency: Agency, key: str, payload: dict[str, Any]) -> BackendRequest:
    service = agency.services[1]
    return BackendRequest(
        agency.code,
        service.code,
        service.binding.operation,
        Action.SUBMIT,
        payload,
        idempotency_key=key,
    )


def _status(agency: Agency, reference: str) -> BackendRequest:
    service = agency.services[1]
    return BackendRequest(
        agency.code, service.code, service.binding.operation, Action.STATUS, reference=reference
    )


CHILD = {
    "REG_NO": CITIZENS[4],
    "CHILD_NAME": "Өлзийбаяр Түвшинжаргал",
    "BIRTH_DATE": dt.date(2024, 5, 1),
    "CHILDREN": 3,
    "SINGLE": True,
}


def _files(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.iterdir())


async def _wait_for(folder: Path, suffix: str) -> Path:
    async with asyncio.timeout(3.0):
        while True:
            names = await asyncio.to_thread(_files, folder)
            found = [name for name in names if name.endswith(suffix)]
            if found:
                return folder / found[0]
            await asyncio.sleep(0.005)


# -- the format -------------------------------------------------------------


@pytest.mark.parametrize("dialect", [WELF_DIALECT, ENV_DIALECT])
def test_documents_survive_a_round_trip(dialect: dict[str, Any]) -> None:
    codec = FileDialect.of(_agency("WELF", dialect, WELF.services))
    document = Document(
        Header("RES", "LOOKUP", "FSTAMP", "Q" + "0" * 32, "WELF-001", "WELF"),
        {"RESULT": "FOUND", "NOTE": None},
        {
            "LONG": "Баянзүрх дүүрэг, Өлзийт хороо; " * 4 + "  ",  # several fixed chunks
            "EMPTY": "",
            "NULL": None,
            "QUOTED": 'a "b"; c\r\nd' if dialect["format"] == "csv" else 'a "b"; c',
        },
    )
    raw = codec.encode(document)
    assert codec.decode(raw) == document
    if dialect["format"] == "fixed":
        lines = raw.split(b"\r\n")[:-1]
        assert all(len(line) % 40 == 0 for line in lines)
        # ү and Ө travel as ї and Є, the old Mongolian font code points
        assert "ї".encode("cp1251") in raw and "Є".encode("cp1251") in raw


@pytest.mark.parametrize("cut", [10, -50, -3, -1])
def test_a_cut_file_is_incomplete_not_broken(cut: int) -> None:
    codec = FileDialect.of(WELF)
    raw = codec.encode(
        Document(Header("REQ", "SUBMIT", "CHMONEY", "Kx", "WELF-002", "WELF"), {"KEY": "x"})
    )
    with pytest.raises(Incomplete):
        codec.decode(raw[:cut])


def test_a_changed_byte_fails_the_checksum() -> None:
    codec = FileDialect.of(ENV)
    raw = codec.encode(
        Document(Header("REQ", "STATUS", "TREECUT", "Qa", "ENV-002", "ENV"), {"REF": "ENV-1"})
    )
    with pytest.raises(Incomplete):
        codec.decode(raw.replace(b"ENV-1", b"ENV-2"))


def test_dialect_is_checked_when_the_connector_is_built(tmp_path: Path) -> None:
    endpoint = BackendEndpoint(url=tmp_path.as_uri())
    for dialect in (
        {"format": "xml"},
        {"format": "fixed", "field_width": 12},
        {"encoding": "utf-16"},
        {"delimiter": ";;"},
        {"colour": "blue"},
    ):
        with pytest.raises(ValueError):
            FileConnector(_agency("ENV", dialect, ENV.services), endpoint)
    with pytest.raises(ValueError):
        FileConnector(ENV, BackendEndpoint(url="http://127.0.0.1/exchange"))


def test_endpoint_is_the_exchange_folder(tmp_path: Path) -> None:
    workdir = tmp_path / "with space" / "welf"
    endpoint = FileSimulator.endpoint_for(WELF, workdir, 0)
    assert endpoint.url.startswith("file:///")
    assert exchange_path(endpoint.url) == workdir / "exchange"


# -- lookups ----------------------------------------------------------------


async def test_lookup_round_trip_fixed_cp1251(tmp_path: Path) -> None:
    register = CITIZENS[4]  # "ӨҮ…": both letters cp1251 lacks
    async with running(WELF, tmp_path) as (simulator, connector):
        simulator.faults.down = True  # hold the request so the file can be inspected
        task = asyncio.create_task(connector.send(_lookup_request(WELF, {"REG_NO": register})))
        request_file = await _wait_for(tmp_path / "exchange" / "in", ".req")
        raw = request_file.read_bytes()
        request_id = request_file.name.removesuffix(".req")
        head = ["HDR", "REQ", "LOOKUP", "FSTAMP", request_id, "WELF-001", "WELF", "1"]
        assert raw.startswith("".join(f.ljust(40) for f in head).encode("ascii") + b"\r\n")
        assert "ЄЇ91111145".encode("cp1251") in raw
        assert all(len(line) % 40 == 0 for line in raw.split(b"\r\n")[:-1])
        simulator.faults.down = False
        response = await task

    expected = _expected(WELF, WELF.services[0], {"REG_NO": register})
    assert dict(response.data) == expected
    assert response.status is None
    assert any(any("А" <= ch <= "я" for ch in str(v)) for v in expected.values())
    assert response.data["ELIGIBLE"] in ("Y", "N")
    dt.date.fromisoformat(response.data["VALID_TO"])
    assert _files(tmp_path / "exchange" / "out") == []  # the answer was consumed
    assert _files(tmp_path / "exchange" / "in") == []


async def test_lookup_round_trip_csv_utf8(tmp_path: Path) -> None:
    permit = 'ТЗ-2024/001; "хуучин" үйлдвэр'  # delimiter and quotes inside a value
    asked = {"REG_NO": CITIZENS[0], "PERMIT_NO": permit}
    async with running(ENV, tmp_path) as (_, connector):
        response = await connector.send(_lookup_request(ENV, asked))
        again = await connector.send(_lookup_request(ENV, asked))
        other = await connector.send(_lookup_request(ENV, {**asked, "REG_NO": CITIZENS[1]}))
    assert dict(response.data) == _expected(ENV, ENV.services[0], asked)
    assert response.data["PLATE"].endswith("УБА")
    assert again.data == response.data  # deterministic per citizen
    assert other.data != response.data
    archived = list((tmp_path / "exchange" / "archive").iterdir())
    text = archived[0].read_bytes().decode("utf-8")
    assert text.startswith("HDR;REQ;LOOKUP;PERMIT;Q")
    assert text.endswith("\r\n") and "\r\nTRL;2;" in text


async def test_unknown_citizen_is_not_found(tmp_path: Path) -> None:
    async with running(WELF, tmp_path) as (_, connector):
        response = await connector.send(_lookup_request(WELF, {"REG_NO": "АА00000000"}))
    assert response.status == "NOT_FOUND"
    assert response.data == {}


async def test_concurrent_lookups_get_their_own_answers(tmp_path: Path) -> None:
    async with running(ENV, tmp_path) as (_, connector):
        asked = [{"REG_NO": c, "PERMIT_NO": f"P-{i}"} for i, c in enumerate(CITIZENS)]
        responses = await asyncio.gather(*(connector.send(_lookup_request(ENV, a)) for a in asked))
    for question, response in zip(asked, responses, strict=True):
        assert dict(response.data) == _expected(ENV, ENV.services[0], question)


async def test_value_the_code_page_lacks_is_a_mapping_error(tmp_path: Path) -> None:
    async with running(WELF, tmp_path) as (_, connector):
        for name in ("王小明", "first\nsecond"):
            with pytest.raises(MappingError) as caught:
                await connector.send(_submit(WELF, "k-map", {**CHILD, "CHILD_NAME": name}))
            assert caught.value.field == "CHILD_NAME"
            assert name not in str(caught.value)
        assert _files(tmp_path / "exchange" / "in") == []


# -- submissions ------------------------------------------------------------


async def test_submit_twice_with_one_key_files_once(tmp_path: Path) -> None:
    key = "7f1c2b9e-0d4a-4f57-9a3e-2b8c1d6e5f40"
    async with running(WELF, tmp_path) as (simulator, connector):
        first = await connector.send(_submit(WELF, key, CHILD))
        second = await connector.send(_submit(WELF, key, CHILD))
        third = await connector.send(_submit(WELF, "another-key", CHILD))
        filings = simulator.filings()
        attempts = simulator.attempts()
    assert first.status == second.status == "DELIVERED"
    assert first.reference == second.reference
    assert first.reference is not None and first.reference.startswith("WELF-")
    assert third.reference != first.reference
    assert [f.idempotency_key for f in filings] == [key, "another-key"]
    assert attempts == 3  # the repeat reached the agency and was deduped there
    assert filings[0].operation == "CHMONEY"
    assert filings[0].payload == {
        "REG_NO": CITIZENS[4],
        "CHILD_NAME": "Өлзийбаяр Түвшинжаргал",
        "BIRTH_DATE": "2024-05-01",
        "CHILDREN": "3",
        "SINGLE": "Y",
    }
    assert _files(tmp_path / "exchange" / "ack") == []


async def test_odd_keys_get_hashed_file_names(tmp_path: Path) -> None:
    key = "Key/With:Odd*Chars"  # not a safe (or case-insensitive-safe) file name
    async with running(ENV, tmp_path) as (simulator, connector):
        simulator.faults.down = True
        task = asyncio.create_task(connector.send(_submit(ENV, key, {"REG_NO": CITIZENS[0]})))
        pending = await _wait_for(tmp_path / "exchange" / "in", ".req")
        assert pending.name.startswith("H") and len(pending.name) == 33 + 4
        simulator.faults.down = False
        response = await task
        assert [f.idempotency_key for f in simulator.filings()] == [key]
    assert response.status == "DELIVERED"


async def test_batch_job_down_times_out_and_the_retry_files_once(tmp_path: Path) -> None:
    key = "retry-while-down"
    async with running(WELF, tmp_path) as (simulator, connector):
        simulator.faults.down = True
        short = FileConnector(WELF, simulator.endpoint(), Timeouts(total=0.5))
        loop = asyncio.get_running_loop()
        started = loop.time()
        with pytest.raises(BackendTimeout):
            await short.send(_submit(WELF, key, CHILD))
        assert 0.45 <= loop.time() - started < 1.5
        with pytest.raises(BackendTimeout):
            await short.send(_submit(WELF, key, CHILD))
        # Both attempts are one file the agency will see once.
        assert _files(tmp_path / "exchange" / "in") == [f"K{key}.req"]
        assert simulator.filings() == []
        # The third try rewrites the same file before the job comes back, so
        # the job finds one request. (Brought back first, the job could take
        # the old file while the third try wrote it again: processed twice,
        # filed once -- a race, seen once on a slow machine.)
        pending = tmp_path / "exchange" / "in" / f"K{key}.req"
        earlier = pending.stat().st_ino
        task = asyncio.create_task(connector.send(_submit(WELF, key, CHILD)))
        async with asyncio.timeout(3.0):
            while True:
                if pending.exists() and pending.stat().st_ino != earlier:
                    break  # rewritten
                await asyncio.sleep(0.005)
        simulator.faults.down = False
        response = await task
        assert len(simulator.filings()) == 1
        assert simulator.attempts() == 1
    assert response.status == "DELIVERED"


async def test_batch_job_down_lookup_times_out_and_is_withdrawn(tmp_path: Path) -> None:
    async with running(WELF, tmp_path) as (simulator, _):
        simulator.faults.down = True
        short = FileConnector(WELF, simulator.endpoint(), Timeouts(total=0.5))
        with pytest.raises(BackendTimeout) as caught:
            await short.send(_lookup_request(WELF, {"REG_NO": CITIZENS[0]}))
        assert CITIZENS[0] not in str(caught.value)
        assert _files(tmp_path / "exchange" / "in") == []
        simulator.faults.down = False
        await asyncio.sleep(0.1)
        assert _files(tmp_path / "exchange" / "out") == []


async def test_a_late_acknowledgement_answers_the_retry(tmp_path: Path) -> None:
    key = "late-ack"
    async with running(WELF, tmp_path) as (simulator, connector):
        simulator.faults.delay = 0.4
        short = FileConnector(WELF, simulator.endpoint(), Timeouts(total=0.1))
        with pytest.raises(BackendTimeout):
            await short.send(_submit(WELF, key, CHILD))
        await _wait_for(tmp_path / "exchange" / "ack", ".ack")
        simulator.faults.reset()
        response = await connector.send(_submit(WELF, key, CHILD))
        await asyncio.sleep(0.1)
        assert [f.reference for f in simulator.filings()] == [response.reference]
        assert simulator.attempts() == 1  # answered from the waiting ack, not re-sent
        assert _files(tmp_path / "exchange" / "in") == []
        assert _files(tmp_path / "exchange" / "ack") == []


# -- incomplete and broken files --------------------------------------------


async def test_half_written_request_is_ignored_until_complete(tmp_path: Path) -> None:
    async with running(WELF, tmp_path) as (simulator, _):
        codec = simulator.dialect
        raw = codec.encode(
            Document(
                Header("REQ", "SUBMIT", "CHMONEY", "Khand-written", "WELF-002", "WELF"),
                {"KEY": "hand-written"},
                {"REG_NO": CITIZENS[2], "CHILD_NAME": "Түвшин"},
            )
        )
        pending = tmp_path / "exchange" / "in" / "Khand-written.req"
        trailer_at = raw.rindex(b"\r\n", 0, len(raw) - 2) + 2
        # One changed letter (ї is how ү travels): the checksum no longer matches.
        corrupted = raw.replace("Тївшин".encode("cp1251"), "Тувшин".encode("cp1251"))
        assert corrupted != raw
        for partial in (raw[: len(raw) // 2], raw[:trailer_at], raw[:-1], corrupted):
            pending.write_bytes(partial)  # in place, as a legacy writer would
            await asyncio.sleep(0.1)  # ten polls of the batch job
            assert simulator.filings() == []
            assert _files(tmp_path / "exchange" / "ack") == []
            assert pending.exists()
        pending.write_bytes(raw)
        await _wait_for(tmp_path / "exchange" / "ack", ".ack")
        assert [f.payload["CHILD_NAME"] for f in simulator.filings()] == ["Түвшин"]
        assert not pending.exists()


async def test_broken_request_is_set_aside(tmp_path: Path) -> None:
    async with running(ENV, tmp_path) as (simulator, _):
        body = b"HDR;REQ;LOOKUP\r\n"  # complete file, too short a header
        (tmp_path / "exchange" / "in" / "Qbroken.req").write_bytes(simulator.dialect.frame(body, 0))
        await _wait_for(tmp_path / "exchange" / "archive", ".bad")
        assert _files(tmp_path / "exchange" / "in") == []
        assert _files(tmp_path / "exchange" / "out") == []


async def test_half_written_result_is_not_read_as_complete(tmp_path: Path) -> None:
    async with running(WELF, tmp_path) as (simulator, connector):
        simulator.half_write_pause = 0.4
        loop = asyncio.get_running_loop()
        started = loop.time()
        task = asyncio.create_task(connector.send(_lookup_request(WELF, {"REG_NO": CITIZENS[1]})))
        result = await _wait_for(tmp_path / "exchange" / "out", ".res")
        await asyncio.sleep(0.1)  # several connector polls while the file is half there
        assert not task.done()
        with pytest.raises(Incomplete):
            simulator.dialect.decode(result.read_bytes())
        response = await task
        assert loop.time() - started >= 0.4
    assert dict(response.data) == _expected(WELF, WELF.services[0], {"REG_NO": CITIZENS[1]})
    assert _files(tmp_path / "exchange" / "out") == []


async def test_result_that_stays_half_written_is_a_protocol_error(tmp_path: Path) -> None:
    async with running(WELF, tmp_path) as (simulator, _):
        simulator.half_write_pause = 5.0
        short = FileConnector(WELF, simulator.endpoint(), Timeouts(total=0.5))
        with pytest.raises(ProtocolError, match="incomplete"):
            await short.send(_lookup_request(WELF, {"REG_NO": CITIZENS[1]}))
        assert [p.suffix for p in (tmp_path / "exchange" / "out").iterdir()] == [".bad"]


@pytest.mark.parametrize("agency", [WELF, ENV], ids=["fixed", "csv"])
async def test_garbage_is_a_protocol_error(agency: Agency, tmp_path: Path) -> None:
    async with running(agency, tmp_path) as (simulator, connector):
        simulator.faults.garbage = True
        loop = asyncio.get_running_loop()
        started = loop.time()
        with pytest.raises(ProtocolError) as caught:
            await connector.send(_lookup_request(agency, {"REG_NO": CITIZENS[0]}))
        assert loop.time() - started < 1.0  # a complete garbled file needs no waiting
        assert CITIZENS[0] not in str(caught.value)
        with pytest.raises(ProtocolError):
            await connector.send(_submit(agency, "garbled", {"REG_NO": CITIZENS[0]}))
        assert simulator.filings() == []


# -- status -----------------------------------------------------------------


def _key_after_review(state: str) -> str:
    """A key whose application reaches ``state`` right after IN_REVIEW."""
    return next(
        key
        for key in (f"status-{i}" for i in range(500))
        if review_state(key, 2.5, 1.0)[0] == state
    )


@pytest.mark.parametrize("after_review", ["APPROVED", "NEEDS_INFO", "REJECTED"])
async def test_status_progresses(after_review: str, tmp_path: Path) -> None:
    review = 0.2
    key = _key_after_review(after_review)
    expected: list[str] = []
    for step in range(5):
        state = review_state(key, (step + 0.5) * review, review)[0]
        if state not in expected:
            expected.append(state)
    last = expected[-1]
    async with running(WELF, tmp_path, review_seconds=review) as (_, connector):
        submitted = await connector.send(_submit(WELF, key, CHILD))
        assert submitted.reference is not None
        seen: list[str] = []
        notes: dict[str, str | None] = {}
        loop = asyncio.get_running_loop()
        deadline = loop.time() + 3.0
        while loop.time() < deadline:
            response = await connector.send(_status(WELF, submitted.reference))
            assert response.reference == submitted.reference
            assert response.status is not None
            if response.status not in seen:
                seen.append(response.status)
                notes[response.status] = response.note
            if response.status == last:
                break
            await asyncio.sleep(0.02)
    assert seen == expected
    assert expected[:2] == ["DELIVERED", "IN_REVIEW"]
    if "REJECTED" in notes:
        assert notes["REJECTED"]
    if "NEEDS_INFO" in notes:
        assert notes["NEEDS_INFO"]


async def test_unknown_reference_is_rejected(tmp_path: Path) -> None:
    async with running(ENV, tmp_path) as (_, connector):
        with pytest.raises(BackendRejected, match="UNKNOWN_REFERENCE"):
            await connector.send(_status(ENV, "ENV-2024-999999"))


async def test_records_survive_a_restart(tmp_path: Path) -> None:
    async with running(ENV, tmp_path) as (_, connector):
        filed = await connector.send(_submit(ENV, "restart", {"REG_NO": CITIZENS[3]}))
    assert filed.reference is not None
    async with running(ENV, tmp_path) as (simulator, connector):
        status = await connector.send(_status(ENV, filed.reference))
        assert [f.reference for f in simulator.filings()] == [filed.reference]
    assert status.status == review_state("restart", 0.0, 3.0)[0] == "DELIVERED"


# -- the folder itself ------------------------------------------------------


async def test_missing_exchange_folder_is_unavailable(tmp_path: Path) -> None:
    connector = FileConnector(WELF, BackendEndpoint(url=(tmp_path / "unmounted").as_uri()))
    with pytest.raises(BackendUnavailable, match="missing"):
        await connector.send(_lookup_request(WELF, {"REG_NO": CITIZENS[0]}))


async def test_os_errors_become_unavailable(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    def full_disk(path: Path, data: bytes) -> None:
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

    async with running(WELF, tmp_path) as (_, connector):
        monkeypatch.setattr(files_module, "write_atomic", full_disk)
        with pytest.raises(BackendUnavailable, match="ENOSPC") as caught:
            await connector.send(_submit(WELF, "full-disk", CHILD))
    assert isinstance(caught.value.__cause__, OSError)


async def test_aclose_twice_then_refuses(tmp_path: Path) -> None:
    async with running(WELF, tmp_path) as (_, connector):
        await connector.aclose()
        await connector.aclose()
        with pytest.raises(BackendUnavailable):
            await connector.send(_lookup_request(WELF, {"REG_NO": CITIZENS[0]}))
