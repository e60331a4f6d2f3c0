"""Operators' view of durable delivery: what is dead-lettered and why."""

from __future__ import annotations

import datetime as dt

import strawberry
from sqlalchemy import select

from auth.permissions import OperatorOnly
from auth.principal import PrincipalKind
from gateway.clock import aware
from gateway.db.tables import OutboxItem
from schema import errors, operations


@strawberry.type(description="A delivery that failed for good; replay with `khaalga outbox replay`")
class DeadLetter:
    id: int
    application_id: strawberry.ID
    agency: str
    attempts: int
    last_error: str | None = strawberry.field(description="Error class and our own message")
    created_at: dt.datetime


@strawberry.type
class OutboxQuery:
    @strawberry.field(
        description="Dead-lettered deliveries, oldest first (operators)",
        permission_classes=[OperatorOnly],
    )
    async def dead_letters(self, info: strawberry.Info, first: int = 100) -> list[DeadLetter]:
        principal = operations.require_authenticated(info.context)
        if principal.kind is not PrincipalKind.OPERATOR:
            raise errors.forbidden()
        sessions = info.context.services.store.sessions
        async with sessions() as session:
            rows = await session.scalars(
                select(OutboxItem)
                .where(OutboxItem.state == "DEAD")
                .order_by(OutboxItem.id)
                .limit(max(0, min(first, 500)))
            )
            return [
                DeadLetter(
                    id=row.id,
                    application_id=strawberry.ID(row.application_id),
                    agency=row.agency,
                    attempts=row.attempts,
                    last_error=row.last_error,
                    created_at=aware(row.created_at),
                )
                for row in rows
            ]
