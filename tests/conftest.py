"""Shared fixtures: databases (SQLite always, PostgreSQL on this machine and
in CI), and the real catalog."""

from __future__ import annotations

import os
import uuid
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from gateway.catalog.loader import Catalog, load_catalog
from gateway.db.migrate import upgrade_async
from gateway.settings import ROOT

# The redis_url and redis_prefix fixtures, for tests that share Redis between gateways.
pytest_plugins = ["tests.support.shared_redis"]

PG_ADMIN = "postgresql://root@127.0.0.1:5432/test"


def unavailable(what: str, exc: BaseException) -> None:
    """A needed server is missing: fail under CI, skip on a laptop."""
    message = f"{what} is not reachable: {type(exc).__name__}"
    if os.environ.get("CI"):
        pytest.fail(message)
    pytest.skip(message)


@pytest.fixture(scope="session")
def catalog() -> Catalog:
    return load_catalog(ROOT / "catalog")


async def _postgres_database() -> tuple[str, str]:
    import asyncpg

    name = f"khaalga_t_{uuid.uuid4().hex[:10]}"
    try:
        admin = await asyncpg.connect(PG_ADMIN, timeout=5)
    except (OSError, asyncpg.PostgresError) as exc:
        unavailable("PostgreSQL on 127.0.0.1:5432", exc)
        raise
    try:
        await admin.execute(f'CREATE DATABASE "{name}"')
    finally:
        await admin.close()
    return name, f"postgresql+asyncpg://root@127.0.0.1:5432/{name}"


async def _drop_postgres(name: str) -> None:
    import asyncpg

    admin = await asyncpg.connect(PG_ADMIN, timeout=5)
    try:
        await admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    finally:
        await admin.close()


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
async def database_url(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[str]:
    """A fresh, migrated gateway database of each kind."""
    if request.param == "sqlite":
        url = f"sqlite+aiosqlite:///{tmp_path / 'khaalga.sqlite'}"
        await upgrade_async(url)
        yield url
        return
    name, url = await _postgres_database()
    try:
        await upgrade_async(url)
        yield url
    finally:
        await _drop_postgres(name)
