"""Migration 0004 (developer program) goes down and up again cleanly on
SQLite and PostgreSQL, and leaves the tables the code expects."""

from __future__ import annotations

import asyncio

from alembic import command
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from sqlalchemy import inspect
from sqlalchemy.engine import Connection

from gateway.db.engine import create_engine
from gateway.db.migrate import alembic_config
from gateway.db.tables import Base, DeveloperApp, DeveloperAppSecret

OURS = frozenset({"apps", "app_secrets"})


async def shape(url: str) -> dict[str, set[str]]:
    """Table -> column names, for the developer program's tables present."""

    def read(connection: Connection) -> dict[str, set[str]]:
        inspector = inspect(connection)
        return {
            table: {c["name"] for c in inspector.get_columns(table)}
            for table in ("apps", "app_secrets")
            if inspector.has_table(table)
        }

    engine = create_engine(url)
    try:
        async with engine.connect() as connection:
            return await connection.run_sync(read)
    finally:
        await engine.dispose()


async def test_0004_downgrades_and_upgrades(database_url: str) -> None:
    expected = {
        "apps": {c.name for c in DeveloperApp.__table__.columns},
        "app_secrets": {c.name for c in DeveloperAppSecret.__table__.columns},
    }
    assert await shape(database_url) == expected
    config = alembic_config(database_url)
    await asyncio.to_thread(command.downgrade, config, "0003")
    assert await shape(database_url) == {}
    await asyncio.to_thread(command.upgrade, config, "head")
    assert await shape(database_url) == expected


async def test_0004_matches_the_table_definitions(database_url: str) -> None:
    def differences(connection: Connection) -> list[object]:
        found = compare_metadata(MigrationContext.configure(connection), Base.metadata)
        return [d for d in found if OURS & set(_tables(d))]

    engine = create_engine(database_url)
    try:
        async with engine.connect() as connection:
            assert await connection.run_sync(differences) == []
    finally:
        await engine.dispose()


def _tables(difference: object) -> list[str]:
    """The table names an autogenerate difference (a tuple, or a list of them) touches."""
    items = difference if isinstance(difference, list) else [difference]
    names = []
    for item in items:
        for part in item if isinstance(item, tuple) else ():
            table = getattr(part, "table", None)
            name = getattr(part, "name", None)
            names.append(str(table.name) if table is not None else str(name))
            if isinstance(part, str):
                names.append(part)
    return names
