"""SqliteReads: a lookup's one trip to aiosqlite's thread, on kept connections."""

from __future__ import annotations

import asyncio
import datetime as dt
import sqlite3
from collections.abc import AsyncIterator
from decimal import Decimal
from pathlib import Path

import pytest
from sqlalchemy import Column, Date, Integer, MetaData, Numeric, String, Table, bindparam, select
from sqlalchemy import exc as sa_exc
from sqlalchemy.ext.asyncio import AsyncEngine, create_async_engine

from connectors.sqlite_reads import SqliteReads, SqliteStatement

POOL = 4
metadata = MetaData()
parcels = Table(
    "PARCELS",
    metadata,
    Column("ID", Integer, primary_key=True),
    Column("OWNER", String(20)),
    Column("SINCE", Date),
    Column("AREA", Numeric(10, 2)),
)
OWNER, SINCE = bindparam("p0", type_=String), bindparam("p1", type_=Date)
BY_OWNER = (
    select(parcels.c.ID, parcels.c.SINCE, parcels.c.AREA)
    .where(OWNER == parcels.c.OWNER, parcels.c.SINCE.between(SINCE, dt.date(2099, 1, 1)))
    .order_by(parcels.c.ID)
    .limit(5)
)
A, B = "АА00000001", "ББ00000002"  # made-up register numbers
ALL_OF_A = {"p0": A, "p1": dt.date(2000, 1, 1)}
ALL_OF_B = {"p0": B, "p1": dt.date(2000, 1, 1)}


@pytest.fixture
async def engine(tmp_path: Path) -> AsyncIterator[AsyncEngine]:
    engine = create_async_engine(
        f"sqlite+aiosqlite:///{tmp_path / 'agency.sqlite'}", pool_size=POOL, max_overflow=0
    )
    async with engine.begin() as conn:
        await conn.run_sync(metadata.create_all)
        await conn.execute(parcels.insert(), [
            {"ID": 1, "OWNER": A, "SINCE": dt.date(2019, 5, 1), "AREA": Decimal("512.25")},
            {"ID": 2, "OWNER": A, "SINCE": dt.date(2023, 1, 9), "AREA": Decimal("80.00")},
            {"ID": 3, "OWNER": B, "SINCE": dt.date(2021, 7, 3), "AREA": Decimal("9.5")},
        ])  # fmt: skip
    yield engine
    await engine.dispose()


@pytest.fixture
def statement(engine: AsyncEngine) -> SqliteStatement:
    return SqliteStatement.compile(BY_OWNER, engine.dialect)


def _checked_out(engine: AsyncEngine) -> int:
    return int(engine.sync_engine.pool.checkedout())  # type: ignore[attr-defined]


async def test_rows_as_the_engine_reads_them(
    engine: AsyncEngine, statement: SqliteStatement
) -> None:
    reads = SqliteReads(engine, keep=1, recycle=3600)
    values = {"p0": A, "p1": dt.date(2020, 1, 1)}
    try:
        rows = await reads.fetch(statement, values)
    finally:
        await reads.aclose()
    async with engine.connect() as conn:
        expected = [tuple(row) for row in (await conn.execute(BY_OWNER, values)).all()]
    assert rows == expected == [(2, dt.date(2023, 1, 9), Decimal("80.00"))]


async def test_keeps_at_most_its_share_and_gives_all_back(
    engine: AsyncEngine, statement: SqliteStatement
) -> None:
    reads = SqliteReads(engine, keep=2, recycle=3600)
    answers = await asyncio.gather(*(reads.fetch(statement, ALL_OF_B) for _ in range(20)))
    assert all(len(rows) == 1 for rows in answers)
    assert _checked_out(engine) == 2  # the rest went back to the pool
    async with engine.connect(), engine.connect():  # the others are free for filings
        pass
    await reads.aclose()
    assert _checked_out(engine) == 0


async def test_a_failed_read_is_sqlalchemys_error_and_frees_its_connection(
    engine: AsyncEngine, statement: SqliteStatement
) -> None:
    reads = SqliteReads(engine, keep=1, recycle=3600)
    assert len(await reads.fetch(statement, ALL_OF_A)) == 2
    async with engine.begin() as conn:
        await conn.exec_driver_sql('ALTER TABLE "PARCELS" RENAME TO "PARCELS_OLD"')
    with pytest.raises(sa_exc.OperationalError) as caught:
        await reads.fetch(statement, ALL_OF_A)
    assert isinstance(caught.value.orig, sqlite3.OperationalError)
    assert A not in str(caught.value)  # parameters are hidden
    assert _checked_out(engine) == 0
    async with engine.begin() as conn:
        await conn.exec_driver_sql('ALTER TABLE "PARCELS_OLD" RENAME TO "PARCELS"')
    assert len(await reads.fetch(statement, ALL_OF_A)) == 2
    await reads.aclose()


async def test_a_connection_kept_past_its_recycle_time_goes_back_to_the_pool(
    engine: AsyncEngine, statement: SqliteStatement
) -> None:
    reads = SqliteReads(engine, keep=1, recycle=0.05)
    assert len(await reads.fetch(statement, ALL_OF_B)) == 1
    assert _checked_out(engine) == 1
    await asyncio.sleep(0.1)
    assert len(await reads.fetch(statement, ALL_OF_B)) == 1  # served, then given back
    assert _checked_out(engine) == 0
    assert len(await reads.fetch(statement, ALL_OF_B)) == 1  # and a fresh one kept
    assert _checked_out(engine) == 1
    await reads.aclose()
