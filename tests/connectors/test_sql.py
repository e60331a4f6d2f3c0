"""SqlConnector against the SQL agency simulator, on SQLite, MariaDB and PostgreSQL.

Server databases are reached at the usual loopback addresses (override with
KHAALGA_TEST_MARIADB_URL / KHAALGA_TEST_POSTGRES_URL). Unreachable servers
skip the test locally and fail it under CI. Every test uses its own table
names and drops them afterwards, so parallel or repeated runs never collide.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import os
import re
import time
import uuid
from collections.abc import AsyncIterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import select
from sqlalchemy.ext.asyncio import create_async_engine
from sqlalchemy.pool import NullPool

from connectors.base import BackendResponse
from connectors.config import Timeouts
from connectors.errors import (
    BackendRejected,
    BackendTimeout,
    BackendUnavailable,
    MappingError,
    ProtocolError,
)
from connectors.sql import SqlConnector
from gateway.catalog.model import Agency, Service, ServiceKind
from legacy.fakedata import fake_value
from legacy.review import review_state
from legacy.samples import CITIZENS
from legacy.sql import SqlSimulator, legacy_metadata, lookup_seed
from tests.support.sql_agency import (
    FAST,
    lookup,
    make_agency,
    payload_for,
    service,
    status,
    submit,
)

SERVER_URLS = {
    "mariadb": os.environ.get(
        "KHAALGA_TEST_MARIADB_URL", "mysql+asyncmy://root@127.0.0.1:3306/test"
    ),
    "postgresql": os.environ.get(
        "KHAALGA_TEST_POSTGRES_URL", "postgresql+asyncpg://postgres@127.0.0.1:5432/test"
    ),
}
ORDER = ["DELIVERED", "IN_REVIEW", "NEEDS_INFO", "APPROVED", "REJECTED", "ISSUED"]
REVIEW_SECONDS = 0.2
IMPATIENT = Timeouts(connect=3.0, read=0.3, total=10.0)


@pytest.fixture(
    params=[
        pytest.param("sqlite"),
        pytest.param("mariadb", marks=pytest.mark.mariadb),
        pytest.param("postgresql", marks=pytest.mark.postgres),
    ]
)
async def database_url(request: pytest.FixtureRequest) -> str | None:
    """None means the simulator's embedded default (a SQLite file in its workdir)."""
    name: str = request.param
    if name == "sqlite":
        return None
    url = SERVER_URLS[name]
    engine = create_async_engine(url, poolclass=NullPool)
    try:
        async with asyncio.timeout(5):
            async with engine.connect():
                pass
    except Exception as exc:
        reason = f"{name} unreachable at {url}: {type(exc).__name__}"
        if os.environ.get("CI"):
            pytest.fail(reason)
        pytest.skip(reason)
    finally:
        await engine.dispose()
    return url


@dataclass
class Env:
    agency: Agency
    sim: SqlSimulator
    connector: SqlConnector
    suffix: str

    def connect(self, agency: Agency | None = None, timeouts: Timeouts = FAST) -> SqlConnector:
        connector = SqlConnector(agency or self.agency, self.sim.endpoint(), timeouts)
        self._extra.append(connector)
        return connector

    def __post_init__(self) -> None:
        self._extra: list[SqlConnector] = []


@pytest.fixture
async def env(database_url: str | None, tmp_path: Path) -> AsyncIterator[Env]:
    suffix = uuid.uuid4().hex[:8].upper()
    agency = make_agency(suffix)
    sim = SqlSimulator(
        agency, tmp_path / "prop", 0, review_seconds=REVIEW_SECONDS, database_url=database_url
    )
    await sim.start()
    env = Env(agency, sim, SqlConnector(agency, sim.endpoint(), FAST), suffix)
    try:
        yield env
    finally:
        for connector in [env.connector, *env._extra]:
            await connector.aclose()
        await sim.stop()
        if database_url is not None:
            engine = create_async_engine(database_url, poolclass=NullPool)
            try:
                async with engine.begin() as conn:
                    await conn.run_sync(legacy_metadata(agency).drop_all)
            finally:
                await engine.dispose()


def expected_record(svc: Service, payload: Mapping[str, Any]) -> dict[str, Any]:
    types = {f.name: f.type for f in svc.result}
    return {
        column: fake_value(types[field], lookup_seed(svc.binding.operation, payload, column))
        for field, column in svc.binding.response.items()
    }


def test_endpoint_is_a_sqlite_file_in_workdir(tmp_path: Path) -> None:
    endpoint = SqlSimulator.endpoint_for(make_agency("X"), tmp_path, 0)
    assert endpoint.url == f"sqlite+aiosqlite:///{tmp_path.resolve() / 'prop.sqlite'}"


async def test_embedded_default_survives_restart(tmp_path: Path) -> None:
    agency = make_agency("X")
    sim = SqlSimulator(agency, tmp_path, 0)
    await sim.start()
    try:
        assert (tmp_path / "prop.sqlite").is_file()
    finally:
        await sim.stop()
    # A restart keeps the schema and seeds again without duplicating register rows.
    sim = SqlSimulator(agency, tmp_path, 0)
    await sim.start()
    try:
        connector = SqlConnector(agency, sim.endpoint(), FAST)
        svc = service(agency, ServiceKind.LOOKUP)
        answer = await connector.send(lookup(agency, payload_for(svc, CITIZENS[0])))
        assert answer.data
        await connector.aclose()
    finally:
        await sim.stop()


async def test_lookup_round_trip(env: Env) -> None:
    svc = service(env.agency, ServiceKind.LOOKUP)
    answers: list[BackendResponse] = []
    for citizen in CITIZENS:
        payload = payload_for(svc, citizen)
        answer = await env.connector.send(lookup(env.agency, payload))
        assert answer.status is None
        expected = expected_record(svc, payload)
        assert set(answer.data) == set(expected)
        assert answer.data["VALID_DT"] == expected["VALID_DT"]
        assert isinstance(answer.data["VALID_DT"], dt.date)
        assert answer.data["DSTR_NM"] == expected["DSTR_NM"]
        assert float(answer.data["AREA_M2"]) == float(expected["AREA_M2"])
        assert int(answer.data["FEE_AMT"]) == expected["FEE_AMT"]
        answers.append(answer)
    assert len({a.data["DSTR_NM"] + str(a.data["VALID_DT"]) for a in answers}) > 1


async def test_busy_lookups_leave_filings_a_connection(env: Env) -> None:
    # SQLite keeps some lookup connections out of the pool (connectors/sqlite_reads.py);
    # a burst of lookups must not leave a filing waiting for the pool's timeout.
    svc = service(env.agency, ServiceKind.LOOKUP)
    connector = env.connect(timeouts=Timeouts(connect=0.5, read=2.0, total=10.0))
    answers = await asyncio.gather(
        *(connector.send(lookup(env.agency, payload_for(svc, CITIZENS[i % 3]))) for i in range(40))
    )
    assert all(answer.data for answer in answers)
    filed = await asyncio.gather(
        *(connector.send(submit(env.agency, f"k-{uuid.uuid4()}")) for _ in range(8))
    )
    assert {answer.status for answer in filed} == {"DELIVERED"}


async def test_lookup_not_found(env: Env) -> None:
    svc = service(env.agency, ServiceKind.LOOKUP)
    payload = payload_for(svc, CITIZENS[0]) | {"REG_NO": "АА00000000"}
    answer = await env.connector.send(lookup(env.agency, payload))
    assert answer.status == "NOT_FOUND"
    assert answer.data == {}


async def test_submit_twice_same_key_files_once(env: Env) -> None:
    key = f"k-{uuid.uuid4()}"
    first = await env.connector.send(submit(env.agency, key))
    second = await env.connector.send(submit(env.agency, key))
    assert first.status == second.status == "DELIVERED"
    assert first.reference == second.reference
    assert first.reference is not None
    assert re.fullmatch(rf"PROP-{dt.datetime.now(dt.UTC).year}-\d{{6}}", first.reference)
    filings = [f for f in env.sim.filings() if f.idempotency_key == key]
    assert len(filings) == 1
    assert filings[0].reference == first.reference
    assert filings[0].payload["REG_NO"] == CITIZENS[0]
    other = await env.connector.send(submit(env.agency, f"k-{uuid.uuid4()}"))
    assert other.reference != first.reference
    assert len(env.sim.filings()) == 2


async def test_concurrent_submits_same_key_file_once(env: Env) -> None:
    key = f"k-{uuid.uuid4()}"
    answers = await asyncio.gather(*(env.connector.send(submit(env.agency, key)) for _ in range(5)))
    assert {a.reference for a in answers} == {answers[0].reference}
    assert answers[0].reference is not None
    filings = env.sim.filings()
    assert [f.idempotency_key for f in filings] == [key]


async def test_status_progresses(env: Env) -> None:
    key = f"k-{uuid.uuid4()}"
    filed = await env.connector.send(submit(env.agency, key))
    assert filed.reference is not None
    final, final_note = review_state(key, 100 * REVIEW_SECONDS, REVIEW_SECONDS)
    seen: list[str] = []
    deadline = time.monotonic() + 20 * REVIEW_SECONDS
    answer = await env.connector.send(status(env.agency, filed.reference))
    while True:
        assert answer.reference == filed.reference
        assert answer.status is not None
        if not seen or seen[-1] != answer.status:
            seen.append(answer.status)
        if answer.status == final or time.monotonic() > deadline:
            break
        await asyncio.sleep(REVIEW_SECONDS / 8)
        answer = await env.connector.send(status(env.agency, filed.reference))
    assert seen[0] == "DELIVERED"
    assert seen[-1] == final
    assert "IN_REVIEW" in seen
    assert seen == sorted(seen, key=ORDER.index) or "NEEDS_INFO" in seen
    assert answer.note == final_note


async def test_status_with_letter_codes_and_unknown_reference(
    database_url: str | None, tmp_path: Path
) -> None:
    letters = {
        "N": "DELIVERED",
        "R": "IN_REVIEW",
        "I": "NEEDS_INFO",
        "A": "APPROVED",
        "X": "REJECTED",
        "G": "ISSUED",
    }
    agency = make_agency(uuid.uuid4().hex[:8].upper(), status_codes=letters)
    sim = SqlSimulator(
        agency, tmp_path, 0, review_seconds=REVIEW_SECONDS, database_url=database_url
    )
    await sim.start()
    connector = SqlConnector(agency, sim.endpoint(), FAST)
    try:
        key = f"k-{uuid.uuid4()}"
        filed = await connector.send(submit(agency, key))
        assert filed.reference is not None
        await asyncio.sleep(8 * REVIEW_SECONDS)
        answer = await connector.send(status(agency, filed.reference))
        assert answer.status == review_state(key, 100, REVIEW_SECONDS)[0]
        with pytest.raises(BackendRejected):
            await connector.send(status(agency, "PROP-1999-999999"))
    finally:
        await connector.aclose()
        await sim.stop()
        if database_url is not None:
            engine = create_async_engine(database_url, poolclass=NullPool)
            async with engine.begin() as conn:
                await conn.run_sync(legacy_metadata(agency).drop_all)
            await engine.dispose()


async def test_database_locked_is_unavailable(env: Env) -> None:
    svc = service(env.agency, ServiceKind.LOOKUP)
    warm = env.connect(timeouts=IMPATIENT)
    # One connector has reflected the tables already, the other meets the lock cold.
    assert (await warm.send(lookup(env.agency, payload_for(svc, CITIZENS[1])))).data
    cold = env.connect(timeouts=IMPATIENT)
    env.sim.faults.down = True
    await env.sim.apply_faults()
    with pytest.raises(BackendUnavailable):
        await warm.send(lookup(env.agency, payload_for(svc, CITIZENS[1])))
    with pytest.raises(BackendUnavailable):
        await warm.send(submit(env.agency, f"k-{uuid.uuid4()}"))
    with pytest.raises(BackendUnavailable) as caught:
        await cold.send(submit(env.agency, f"k-{uuid.uuid4()}"))
    assert CITIZENS[0] not in str(caught.value)
    env.sim.faults.reset()
    await env.sim.apply_faults()
    assert (await warm.send(lookup(env.agency, payload_for(svc, CITIZENS[1])))).data
    filed = await cold.send(submit(env.agency, f"k-{uuid.uuid4()}"))
    assert filed.status == "DELIVERED"
    assert len(env.sim.filings()) == 1


async def test_overall_time_limit_is_timeout(env: Env) -> None:
    # The lock outlasts the whole budget (but not the lock timeout): the answer never comes.
    # total: room for the first call's connect and table reflection on a busy
    # machine; the lock timeout (read) is far beyond both it and the bound.
    svc = service(env.agency, ServiceKind.LOOKUP)
    patient = env.connect(timeouts=Timeouts(connect=3.0, read=10.0, total=1.5))
    assert (await patient.send(lookup(env.agency, payload_for(svc, CITIZENS[0])))).data
    env.sim.faults.down = True
    await env.sim.apply_faults()
    started = time.monotonic()
    with pytest.raises(BackendTimeout):
        await patient.send(lookup(env.agency, payload_for(svc, CITIZENS[0])))
    assert time.monotonic() - started < 5.0
    env.sim.faults.reset()
    await env.sim.apply_faults()
    assert (await patient.send(lookup(env.agency, payload_for(svc, CITIZENS[0])))).data


async def test_garbage_is_protocol_error(env: Env) -> None:
    svc = service(env.agency, ServiceKind.LOOKUP)
    payload = payload_for(svc, CITIZENS[2])
    filed = await env.connector.send(submit(env.agency, f"k-{uuid.uuid4()}"))
    assert filed.reference is not None
    env.sim.faults.garbage = True
    await env.sim.apply_faults()
    with pytest.raises(ProtocolError) as caught:
        await env.connector.send(lookup(env.agency, payload))
    assert CITIZENS[2] not in str(caught.value)
    with pytest.raises(ProtocolError):
        await env.connector.send(status(env.agency, filed.reference))
    env.sim.faults.reset()
    await env.sim.apply_faults()
    answer = await env.connector.send(lookup(env.agency, payload))
    assert answer.data == expected_record(svc, payload) | {"AREA_M2": answer.data["AREA_M2"]}
    assert (await env.connector.send(status(env.agency, filed.reference))).status in ORDER


async def test_garbage_date_text_on_sqlite(tmp_path: Path) -> None:
    # SQLite stores any text in a DATE column, as old agency databases often did.
    agency = make_agency("G")
    sim = SqlSimulator(agency, tmp_path, 0)
    await sim.start()
    try:
        table = sim.metadata.tables["V_PROP_OWNSHP_G"]
        engine = create_async_engine(sim.endpoint().url, poolclass=NullPool)
        async with engine.begin() as conn:
            await conn.exec_driver_sql(f'UPDATE "{table.name}" SET "VALID_DT" = \'??\'')
            left = (await conn.execute(select(table.c.REG_NO))).all()
        await engine.dispose()
        assert len(left) == len(CITIZENS)
        connector = SqlConnector(agency, sim.endpoint(), FAST)
        svc = service(agency, ServiceKind.LOOKUP)
        with pytest.raises(ProtocolError):
            await connector.send(lookup(agency, payload_for(svc, CITIZENS[0])))
        await connector.aclose()
    finally:
        await sim.stop()


async def test_missing_column_is_mapping_error(env: Env) -> None:
    broken = make_agency(env.suffix, area_column="AREA_M3")
    connector = env.connect(broken)
    svc = service(broken, ServiceKind.LOOKUP)
    with pytest.raises(MappingError) as caught:
        await connector.send(lookup(broken, payload_for(svc, CITIZENS[0])))
    assert caught.value.service_code == "PROP-001"
    assert caught.value.field == "area"
    assert "PROP-001" in str(caught.value)
    assert "area" in str(caught.value)
    assert "AREA_M3" in str(caught.value)


async def test_missing_table_is_mapping_error(env: Env) -> None:
    elsewhere = make_agency(env.suffix + "ZZ")
    connector = env.connect(elsewhere)
    with pytest.raises(MappingError) as caught:
        await connector.send(submit(elsewhere, f"k-{uuid.uuid4()}"))
    assert "PROP-002" in str(caught.value)
    assert caught.value.field == "operation"


async def test_a_batch_answers_as_its_lookups_one_by_one(env: Env) -> None:
    svc = service(env.agency, ServiceKind.LOOKUP)
    unknown = payload_for(svc, CITIZENS[0]) | {"REG_NO": "АА00000000"}
    no_parcel = payload_for(svc, CITIZENS[1]) | {"PRCL_NO": None}  # IS NULL, not = NULL
    unfit = payload_for(svc, CITIZENS[2]) | {"REG_NO": 12}  # an int for a text column
    payloads = [payload_for(svc, c) for c in CITIZENS] + [unknown, no_parcel, unfit]
    payloads.append(payloads[0])  # the same key twice in one batch
    requests = [lookup(env.agency, payload) for payload in payloads]

    batched = await env.connector.lookup_many(requests)

    one_by_one: list[object] = []
    for request in requests:
        try:
            one_by_one.append(await env.connector.send(request))
        except MappingError as exc:
            one_by_one.append(exc)
    assert len(batched) == len(requests)
    for alone, together in zip(one_by_one, batched, strict=True):
        if isinstance(alone, MappingError):
            assert isinstance(together, MappingError)
            assert together.field == alone.field
        else:
            assert together == alone
    assert [answer.status for answer in batched[: len(CITIZENS)]] == [None] * len(CITIZENS)
    assert batched[len(CITIZENS)] == BackendResponse(status="NOT_FOUND")
    assert batched[-1] == batched[0]
    # Every shape of a batch is one statement: the same sequence of shapes is built once.
    assert len(env.connector._batches) == 1
    await env.connector.lookup_many(requests)
    assert len(env.connector._batches) == 1


async def test_a_corrupt_record_fails_its_own_lookup_only(env: Env) -> None:
    svc = service(env.agency, ServiceKind.LOOKUP)
    env.sim.faults.garbage = True  # every register row gets a twin with the same key
    await env.sim.apply_faults()
    known = [lookup(env.agency, payload_for(svc, c)) for c in CITIZENS[:2]]
    unknown = lookup(env.agency, payload_for(svc, CITIZENS[0]) | {"REG_NO": "АА00000000"})
    answers = await env.connector.lookup_many([*known, unknown])
    assert all(isinstance(answer, ProtocolError) for answer in answers[:2])
    assert CITIZENS[0] not in str(answers[0])
    assert answers[2] == BackendResponse(status="NOT_FOUND")


async def test_a_batch_on_a_missing_table_fails_as_a_whole(env: Env) -> None:
    elsewhere = make_agency(env.suffix + "ZZ")
    connector = env.connect(elsewhere)
    svc = service(elsewhere, ServiceKind.LOOKUP)
    requests = [lookup(elsewhere, payload_for(svc, c)) for c in CITIZENS[:2]]
    with pytest.raises(MappingError) as caught:
        await connector.lookup_many(requests)
    assert caught.value.field == "operation"
