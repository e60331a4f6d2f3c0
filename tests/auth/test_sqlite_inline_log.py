"""The resolvers' access rows on SQLite, committed on the event loop
(auth/audit/sqlite_inline.py): a locked database never blocks the loop nor
loses a row, and the WAL is still copied into the database."""

from __future__ import annotations

import asyncio
import sqlite3
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from auth.audit import sqlite_inline
from auth.audit.record import AccessLog
from auth.audit.verify import verify
from gateway.db.engine import create_engine, session_factory
from gateway.db.migrate import upgrade_async
from tests.auth.conftest import lookup_access


@pytest.fixture
def database(tmp_path: Path) -> Path:
    return tmp_path / "khaalga.sqlite"


@pytest.fixture
async def sessions(database: Path) -> AsyncIterator[async_sessionmaker[AsyncSession]]:
    url = f"sqlite+aiosqlite:///{database}"
    await upgrade_async(url)
    engine = create_engine(url)
    yield session_factory(engine)
    await engine.dispose()


def size(path: Path) -> int:
    return path.stat().st_size


async def test_a_database_locked_elsewhere_is_waited_for_off_the_loop(
    sessions: async_sessionmaker[AsyncSession], database: Path
) -> None:
    log = AccessLog(sessions)
    await log.record(lookup_access(0))
    other = sqlite3.connect(database, isolation_level=None)  # another process, say
    other.execute("BEGIN IMMEDIATE")
    try:
        pending = asyncio.create_task(log.record(lookup_access(1)))
        # The loop keeps running while the row waits for the lock...
        ticks = 0
        for _ in range(20):
            await asyncio.sleep(0.01)
            ticks += 1
        assert ticks == 20 and not pending.done()
    finally:
        other.execute("COMMIT")
        other.close()
    await pending  # ...and it is written once the lock is free.
    await log.aclose()
    verdict = await verify(sessions)
    assert verdict.ok and verdict.checked == 2


async def test_the_wal_is_copied_into_the_database(
    sessions: async_sessionmaker[AsyncSession], database: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(sqlite_inline, "CHECKPOINT_EVERY", 20)
    log = AccessLog(sessions)
    before = size(database)
    for n in range(20):
        await log.record(lookup_access(n))
    # In WAL mode the database file itself changes only when a checkpoint
    # copies pages into it (the 20th commit starts one, off the loop).
    for _ in range(200):
        if size(database) > before:
            break
        await asyncio.sleep(0.01)
    assert size(database) > before
    await log.aclose()
    verdict = await verify(sessions)
    assert verdict.ok and verdict.checked == 20
