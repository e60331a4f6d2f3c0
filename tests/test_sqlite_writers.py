"""The embedded SQLite store: the process's write transactions take turns.

SQLite has one write lock, and a writer that finds it taken is left to the
busy handler (sleep and retry, no queue). Here the busy timeout is zero, so
any writer that meets a held lock fails at once with "database is locked":
only the in-process turn-taking of ``session_factory`` lets every one of
them through, and in the order they asked.
"""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

from sqlalchemy import event, text

from gateway.db.engine import create_engine, session_factory


def _no_busy_wait(dbapi_connection: Any, _record: Any) -> None:
    cursor = dbapi_connection.cursor()
    cursor.execute("PRAGMA busy_timeout=0")
    cursor.close()


async def test_sqlite_writers_take_turns_in_the_order_they_asked(tmp_path: Path) -> None:
    engine = create_engine(f"sqlite+aiosqlite:///{tmp_path / 'turns.sqlite'}")
    event.listen(engine.sync_engine, "connect", _no_busy_wait)  # after the engine's own pragmas
    try:
        async with engine.begin() as connection:
            await connection.execute(text("CREATE TABLE filed (n INTEGER)"))
        sessions = session_factory(engine)
        order: list[int] = []

        async def writer(n: int) -> None:
            async with sessions.begin() as session:
                await session.execute(text("INSERT INTO filed VALUES (:n)"), {"n": n})
                # Holding the lock across an await, as every transaction of
                # the delivery loops and the group commit does.
                await asyncio.sleep(0.005)
                order.append(n)

        await asyncio.gather(*(writer(n) for n in range(30)))
        assert order == list(range(30))
        async with sessions() as session:
            assert await session.scalar(text("SELECT count(*) FROM filed")) == 30
    finally:
        await engine.dispose()
