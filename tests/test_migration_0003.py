"""Migration 0003 (the app channel) on SQLite and PostgreSQL: existing rows
become citizen-filed, non-sandbox ones; the downgrade takes the columns away."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from alembic import command
from sqlalchemy import inspect, text

from gateway.db.engine import create_engine
from gateway.db.migrate import alembic_config
from tests.conftest import _drop_postgres, _postgres_database

AT = "2026-01-01 00:00:00"


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
async def empty_url(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[str]:
    """An empty database of each kind, no migration applied yet."""
    if request.param == "sqlite":
        yield f"sqlite+aiosqlite:///{tmp_path / 'khaalga.sqlite'}"
        return
    name, url = await _postgres_database()  # skips, or fails under CI, without PostgreSQL
    try:
        yield url
    finally:
        await _drop_postgres(name)


async def _migrate(url: str, how: str, revision: str) -> None:
    action = command.upgrade if how == "up" else command.downgrade
    await asyncio.to_thread(action, alembic_config(url), revision)


async def _columns(url: str, table: str) -> set[str]:
    engine = create_engine(url)
    try:
        async with engine.connect() as connection:
            found = await connection.run_sync(lambda c: inspect(c).get_columns(table))
    finally:
        await engine.dispose()
    return {column["name"] for column in found}


async def test_upgrade_keeps_existing_rows_and_downgrade_removes_the_columns(
    empty_url: str,
) -> None:
    await _migrate(empty_url, "up", "0002")
    engine = create_engine(empty_url)
    try:
        async with engine.begin() as connection:
            await connection.execute(
                text(
                    "INSERT INTO applications (id, service_code, agency, citizen, status, form, "
                    "submitted_at, updated_at) VALUES ('a-1', 'TEST-001', 'TEST', 'УБ99010112', "
                    f"'SUBMITTED', '{{}}', '{AT}', '{AT}')"
                )
            )
            await connection.execute(
                text(
                    "INSERT INTO outbox (application_id, agency, state, attempts, "
                    f"next_attempt_at, created_at) VALUES ('a-1', 'TEST', 'PENDING', 0, "
                    f"'{AT}', '{AT}')"
                )
            )
        await _migrate(empty_url, "up", "0003")
        async with engine.connect() as connection:
            app = (
                await connection.execute(text("SELECT submitted_by, sandbox FROM applications"))
            ).one()
            outbox = (await connection.execute(text("SELECT sandbox FROM outbox"))).one()
        assert (app.submitted_by, bool(app.sandbox)) == (None, False)
        assert bool(outbox.sandbox) is False
    finally:
        await engine.dispose()
    assert {"submitted_by", "sandbox"} <= await _columns(empty_url, "applications")
    assert "sandbox" in await _columns(empty_url, "outbox")

    await _migrate(empty_url, "down", "0002")
    assert not {"submitted_by", "sandbox"} & await _columns(empty_url, "applications")
    assert "sandbox" not in await _columns(empty_url, "outbox")
    await _migrate(empty_url, "up", "0003")  # and back again
    assert {"submitted_by", "sandbox"} <= await _columns(empty_url, "applications")
