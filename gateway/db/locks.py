"""Starting a transaction as a writer."""

from __future__ import annotations

from sqlalchemy import false, update
from sqlalchemy.ext.asyncio import AsyncSession

from gateway.db.tables import OutboxItem


async def write_first(session: AsyncSession) -> None:
    """Take the database's write lock before reading. On SQLite (WAL) a
    transaction that reads and then writes fails at once ("database is
    locked") when another writer committed in between, while one that writes
    first waits for the lock (busy timeout). A zero-row UPDATE takes it; on
    PostgreSQL it costs nothing and row locks do the rest."""
    await session.execute(update(OutboxItem).where(false()).values(state=OutboxItem.state))
