"""Citizens' applications: store first, deliver after.

``submit`` writes the application, its first history event and its outbox
row in one transaction, so the delivery worker can never miss one and a
crash can never leave half of it. Submissions arriving together share that
transaction (``gateway/group_commit.py``); each returns only once it is
committed. Reads are always scoped to the principal:
someone else's application looks exactly like a missing one.
"""

from __future__ import annotations

import base64
import datetime as dt
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from enum import StrEnum
from typing import Any

from sqlalchemy import Select, and_, false, func, insert, or_, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from auth.audit.chain import append_all
from auth.audit.model import Access
from auth.principal import Principal, PrincipalKind
from gateway.catalog.model import Service
from gateway.clock import aware, utcnow
from gateway.db.tables import Application, ApplicationEvent, OutboxItem
from gateway.group_commit import GroupCommit


class Status(StrEnum):
    SUBMITTED = "SUBMITTED"
    DELIVERED = "DELIVERED"
    IN_REVIEW = "IN_REVIEW"
    NEEDS_INFO = "NEEDS_INFO"
    APPROVED = "APPROVED"
    REJECTED = "REJECTED"
    ISSUED = "ISSUED"
    CANCELLED = "CANCELLED"


FINAL = frozenset({Status.REJECTED, Status.ISSUED, Status.CANCELLED})
CANCELLABLE = frozenset({Status.SUBMITTED, Status.DELIVERED})


class IdempotencyConflict(Exception):
    """The key was already used for a different service."""


class NotCancellable(Exception):
    pass


@dataclass(frozen=True, slots=True)
class Page:
    items: Sequence[Application]
    total: int
    has_next: bool


def encode_cursor(app: Application) -> str:
    raw = f"{aware(app.submitted_at).isoformat()}|{app.id}"
    return base64.urlsafe_b64encode(raw.encode()).decode()


def _decode_cursor(cursor: str) -> tuple[dt.datetime, str] | None:
    try:
        at, _, app_id = base64.urlsafe_b64decode(cursor.encode()).decode().partition("|")
        return dt.datetime.fromisoformat(at), app_id
    except (ValueError, UnicodeDecodeError):
        return None


@dataclass(frozen=True, slots=True)
class _Pending:
    """A submission waiting for its group commit."""

    application: Application  # transient: rows are written from its columns
    access: Access | None


async def _write(session: AsyncSession, batch: Sequence[_Pending]) -> None:
    # Core inserts of plain rows, not ORM objects: a rolled-back attempt
    # leaves nothing behind on the objects (no database-assigned ids) when
    # the batch is retried item by item, and a batch of 64 costs a third
    # of the CPU of the unit of work.
    apps = [pending.application for pending in batch]
    await session.execute(
        insert(Application), [{c.key: getattr(a, c.key) for c in _COLUMNS} for a in apps]
    )
    await session.execute(
        insert(ApplicationEvent),
        [{"application_id": a.id, "at": a.submitted_at, "status": a.status} for a in apps],
    )
    await session.execute(
        insert(OutboxItem),
        [
            {"application_id": a.id, "agency": a.agency, "state": "PENDING", "attempts": 0,
             "next_attempt_at": a.submitted_at, "created_at": a.submitted_at}
            for a in apps
        ],
    )  # fmt: skip
    accesses = [pending.access for pending in batch if pending.access is not None]
    await append_all(session, accesses, utcnow())


_COLUMNS = tuple(Application.__table__.columns)


class ApplicationStore:
    def __init__(self, sessions: async_sessionmaker[AsyncSession]) -> None:
        self.sessions = sessions
        self._group_commit = GroupCommit[_Pending](sessions, _write)

    async def aclose(self) -> None:
        await self._group_commit.aclose()

    async def submit(
        self,
        citizen: str,
        service: Service,
        form: dict[str, Any],
        idempotency_key: str | None,
        access: Access | None = None,
    ) -> Application:
        """``access``, when given, joins the citizen's data-access log in the
        same transaction: the application is never stored unlogged."""
        now = utcnow()
        app = Application(
            id=str(uuid.uuid4()),
            service_code=service.code,
            agency=service.agency_code,
            citizen=citizen,
            status=Status.SUBMITTED,
            form=form,
            idempotency_key=idempotency_key,
            submitted_at=now,
            updated_at=now,
            history=[ApplicationEvent(at=now, status=Status.SUBMITTED)],
        )
        try:
            await self._group_commit(_Pending(app, access))
        except IntegrityError:
            if idempotency_key is None:
                raise
            # A concurrent or earlier request with the same key won the insert.
            existing = await self._by_key(citizen, idempotency_key)
            if existing is None:
                raise
            app = existing
        if app.service_code != service.code:
            raise IdempotencyConflict(idempotency_key)
        return app

    async def _by_key(self, citizen: str, key: str) -> Application | None:
        async with self.sessions() as session:
            query = select(Application).where(
                Application.citizen == citizen, Application.idempotency_key == key
            )
            return (await session.scalars(query)).first()

    @staticmethod
    def _scope(query: Select[Application], principal: Principal) -> Select[Application]:
        if principal.kind is PrincipalKind.CITIZEN and principal.subject:
            return query.where(Application.citizen == principal.subject)
        if principal.kind is PrincipalKind.OFFICER and principal.agency:
            return query.where(Application.agency == principal.agency)
        if principal.kind is PrincipalKind.OPERATOR:
            return query
        return query.where(false())  # deny by default

    async def get(self, principal: Principal, app_id: str) -> Application | None:
        async with self.sessions() as session:
            query = self._scope(select(Application).where(Application.id == app_id), principal)
            return (await session.scalars(query)).first()

    async def list(
        self, principal: Principal, status: Status | None, first: int, after: str | None
    ) -> Page:
        base = self._scope(select(Application), principal)
        if status is not None:
            base = base.where(Application.status == status)
        async with self.sessions() as session:
            total = await session.scalar(select(func.count()).select_from(base.subquery())) or 0
            query = base
            cursor = _decode_cursor(after) if after else None
            if cursor is not None:
                at, app_id = cursor
                query = query.where(
                    or_(
                        Application.submitted_at < at,
                        and_(Application.submitted_at == at, Application.id < app_id),
                    )
                )
            query = query.order_by(Application.submitted_at.desc(), Application.id.desc())
            rows = list((await session.scalars(query.limit(first + 1))).all())
        return Page(rows[:first], int(total), len(rows) > first)

    async def cancel(self, principal: Principal, app_id: str) -> Application | None:
        now = utcnow()
        async with self.sessions.begin() as session:
            query = self._scope(select(Application).where(Application.id == app_id), principal)
            app = (await session.scalars(query.with_for_update())).first()
            if app is None:
                return None
            if app.status not in CANCELLABLE:
                raise NotCancellable(app.status)
            app.status = Status.CANCELLED
            app.updated_at = now
            app.next_poll_at = None
            app.history.append(ApplicationEvent(at=now, status=Status.CANCELLED))
            outbox = (
                await session.scalars(
                    select(OutboxItem).where(
                        OutboxItem.application_id == app.id, OutboxItem.state == "PENDING"
                    )
                )
            ).first()
            if outbox is not None:
                outbox.state = "CANCELLED"
        return app
