"""What the delivery worker's tests share: a store with its in-memory agency
back end, and a look straight at the rows the worker changes."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

from sqlalchemy import select, update

from connectors.memory import MemoryConnector
from connectors.registry import ConnectorRegistry
from gateway.applications import ApplicationStore
from gateway.db.tables import Application, OutboxItem


@dataclass
class DeliveryRig:
    store: ApplicationStore
    backend: MemoryConnector
    registry: ConnectorRegistry

    async def outbox(self) -> OutboxItem:
        """The one outbox row: each test that reads it has submitted one application."""
        async with self.store.sessions() as session:
            return (await session.scalars(select(OutboxItem))).one()

    async def app(self, app_id: str) -> Application:
        async with self.store.sessions() as session:
            found = await session.get(Application, app_id)
            assert found is not None
            return found

    async def due_again(self) -> None:
        """Every row due now, without waiting out its backoff."""
        async with self.store.sessions.begin() as session:
            await session.execute(
                update(OutboxItem).values(next_attempt_at=dt.datetime(2000, 1, 1))
            )
