"""Citizens' applications: store first, deliver after.

``submit`` writes the application, its first history event and its outbox
row in one transaction, so the delivery worker can never miss one and a
crash can never leave half of it. Submissions arriving together share that
transaction (``gateway/group_commit.py``); each returns only once it is
committed. Reads are always scoped to the principal:
someone else's application looks exactly like a missing one.

An app may file for a citizen (``submitted_by`` = its client id); a sandbox
app's applications (``sandbox``) form a world of their own: only that app
and operators see them, never the citizen named in them nor an officer.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from enum import StrEnum
from typing import Any, cast

from sqlalchemy import Select, Table, false, func, insert, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncSession, async_sessionmaker
from sqlalchemy.orm import defer, raiseload

from auth.audit.chain import append_on
from auth.audit.model import Access
from auth.principal import Principal, PrincipalKind
from gateway import keyset_cursor
from gateway.catalog.model import Service
from gateway.clock import utcnow
from gateway.db.engine import write_transaction
from gateway.db.locks import write_first
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


class IdempotencyConflict(Exception):
    """The key was already used for a different service."""


class NotCancellable(Exception):
    """``sent`` when the agency has (or may have) the application already:
    no back end offers a withdrawal, so a cancel here would leave the
    agency processing an application the citizen sees as cancelled."""

    def __init__(self, sent: bool) -> None:
        super().__init__("sent" if sent else "final")
        self.sent = sent


def encode_cursor(app: Application) -> str:
    return keyset_cursor.encode(app.submitted_at, app.id)


def decode_cursor(cursor: str) -> tuple[dt.datetime, str] | None:
    """``None`` when the cursor is not one ``encode_cursor`` made."""
    return keyset_cursor.decode(cursor)


@dataclass(frozen=True, slots=True)
class Step:
    """One entry of a just-filed application's history."""

    at: dt.datetime
    status: str
    note: str | None = None


@dataclass(frozen=True, slots=True)
class Filed:
    """An application as ``submit`` just committed it: what an answer shows,
    without building an ORM instance for it (its attribute instrumentation
    cost ~70 us, a twentieth of a submission's CPU)."""

    id: str
    service_code: str
    status: str
    reference: str | None
    submitted_at: dt.datetime
    history: tuple[Step, ...]


@dataclass(frozen=True, slots=True)
class _Pending:
    """A submission waiting for its group commit."""

    row: dict[str, Any]  # the application's columns
    accesses: tuple[Access, ...]


async def _write(connection: AsyncConnection, batch: Sequence[_Pending]) -> None:
    # Core inserts of plain rows on the connection, not ORM objects nor the
    # ORM's bulk insert: a rolled-back attempt leaves nothing behind when the
    # batch is retried item by item, and the ORM's per-row bookkeeping was
    # most of a batch's CPU.
    apps = [pending.row for pending in batch]
    await connection.execute(insert(_APPLICATIONS), apps)
    await connection.execute(
        insert(_HISTORY),
        [{"application_id": a["id"], "at": a["submitted_at"], "status": a["status"], "note": None}
         for a in apps],
    )  # fmt: skip
    await connection.execute(
        insert(_OUTBOX),
        [
            {"application_id": a["id"], "agency": a["agency"], "state": "PENDING", "attempts": 0,
             "next_attempt_at": a["submitted_at"], "created_at": a["submitted_at"],
             "sandbox": a["sandbox"]}
            for a in apps
        ],
    )  # fmt: skip
    accesses = [access for pending in batch for access in pending.accesses]
    await append_on(connection, accesses, utcnow())


_APPLICATIONS = cast(Table, Application.__table__)
_HISTORY = cast(Table, ApplicationEvent.__table__)
_OUTBOX = cast(Table, OutboxItem.__table__)


def _stored_key(key: str | None, submitted_by: str | None, sandbox: bool) -> str | None:
    """An idempotency key as stored. A citizen's own is kept as given. An
    app's is namespaced by the app and by sandbox or not, then hashed: keys
    are unique per citizen, so without it two apps filing for one citizen
    under the same key would be handed each other's application (and could
    probe for it), and hashing keeps an app's key within the column."""
    if key is None or submitted_by is None:
        return key
    world = "sandbox" if sandbox else "live"
    return "app:" + hashlib.sha256(f"{world}\0{submitted_by}\0{key}".encode()).hexdigest()


class ApplicationStore:
    def __init__(self, sessions: async_sessionmaker[AsyncSession]) -> None:
        self.sessions = sessions
        self._group_commit = GroupCommit[_Pending](self._commit)

    async def _commit(self, batch: Sequence[_Pending]) -> None:
        async with write_transaction(self.sessions) as connection:
            await _write(connection, batch)

    async def aclose(self) -> None:
        await self._group_commit.aclose()

    async def submit(
        self,
        citizen: str,
        service: Service,
        form: dict[str, Any],
        idempotency_key: str | None,
        access: Access | Sequence[Access] | None = None,
        *,
        submitted_by: str | None = None,
        sandbox: bool = False,
    ) -> Application | Filed:
        """``access``, when given, joins the data-access log in the same
        transaction: the application is never stored unlogged. An app's
        filing gives several, one per citizen its form names.
        ``submitted_by``: the client id of the app filing for ``citizen``."""
        accesses = () if access is None else (access,) if isinstance(access, Access) else access
        idempotency_key = _stored_key(idempotency_key, submitted_by, sandbox)
        now = utcnow()
        # Every column, none left to defaults: the batch's rows must all
        # name the same columns.
        row: dict[str, Any] = {
            "id": str(uuid.uuid4()),
            "service_code": service.code,
            "agency": service.agency_code,
            "citizen": citizen,
            "status": Status.SUBMITTED,
            "form": form,
            "reference": None,
            "idempotency_key": idempotency_key,
            "submitted_at": now,
            "updated_at": now,
            "next_poll_at": None,
            "submitted_by": submitted_by,
            "sandbox": sandbox,
        }
        try:
            await self._group_commit(_Pending(row, tuple(accesses)))
            app: Application | Filed = Filed(
                id=row["id"], service_code=service.code, status=Status.SUBMITTED, reference=None,
                submitted_at=now, history=(Step(now, Status.SUBMITTED),),
            )  # fmt: skip
        except IntegrityError:
            if idempotency_key is None:
                raise
            # A concurrent or earlier request with the same key won the insert.
            existing = await self._by_key(citizen, idempotency_key, submitted_by, sandbox)
            if existing is None:
                raise
            app = existing
        if app.service_code != service.code:
            raise IdempotencyConflict(idempotency_key)
        return app

    async def _by_key(
        self, citizen: str, key: str, submitted_by: str | None, sandbox: bool
    ) -> Application | None:
        filer = (
            Application.submitted_by.is_(None)
            if submitted_by is None
            else Application.submitted_by == submitted_by
        )
        async with self.sessions() as session:
            query = select(Application).where(
                Application.citizen == citizen,
                Application.idempotency_key == key,
                filer,
                Application.sandbox == sandbox,
            )
            return (await session.scalars(query)).first()

    @staticmethod
    def _scope(query: Select[Application], principal: Principal) -> Select[Application]:
        # Sandbox rows are made up, and a sandbox app may name anyone in its
        # forms: they never reach a citizen's list or an agency's cases.
        real = Application.sandbox == false()
        if principal.kind is PrincipalKind.CITIZEN and principal.subject:
            return query.where(Application.citizen == principal.subject, real)
        if principal.kind is PrincipalKind.OFFICER and principal.agency:
            return query.where(Application.agency == principal.agency, real)
        if principal.kind is PrincipalKind.APP and principal.subject:
            # Only what this app filed, in the world (sandbox or not) its token is for.
            return query.where(
                Application.submitted_by == principal.subject,
                Application.sandbox == principal.sandbox,
            )
        if principal.kind is PrincipalKind.OPERATOR:
            return query
        return query.where(false())  # deny by default

    async def get(self, principal: Principal, app_id: str) -> Application | None:
        async with self.sessions() as session:
            query = self._scope(select(Application).where(Application.id == app_id), principal)
            return (await session.scalars(query)).first()

    async def list(
        self,
        principal: Principal,
        status: Status | None,
        first: int,
        after: tuple[dt.datetime, str] | None,
        *,
        form: bool = True,
        history: bool = True,
    ) -> keyset_cursor.Page[Application]:
        """Newest first, from just past ``after`` (``decode_cursor``).
        ``form``/``history`` False: left unloaded, for a listing that shows
        neither (together a fifth of a 50-row page's cost); reading one
        then raises rather than quietly loading row by row."""
        base = self._scope(select(Application), principal)
        if status is not None:
            base = base.where(Application.status == status)
        async with self.sessions() as session:
            total = await session.scalar(select(func.count()).select_from(base.subquery())) or 0
            query = keyset_cursor.page(base, Application.submitted_at, Application.id, after, first)
            if not form:
                query = query.options(defer(Application.form))
            if not history:
                query = query.options(raiseload(Application.history))
            rows = list((await session.scalars(query)).all())
        return keyset_cursor.Page.of(rows, first, int(total))

    async def cancel(self, principal: Principal, app_id: str) -> Application | None:
        now = utcnow()
        async with self.sessions.begin() as session:
            await write_first(session)
            query = self._scope(select(Application).where(Application.id == app_id), principal)
            if await session.scalar(query.with_only_columns(Application.id)) is None:
                return None
            # Locked in the delivery worker's order, outbox row then
            # application, so the two can never deadlock on PostgreSQL.
            outbox = (
                await session.scalars(
                    select(OutboxItem).where(OutboxItem.application_id == app_id).with_for_update()
                )
            ).first()
            app = await session.get(Application, app_id, with_for_update=True)
            assert app is not None  # applications are never deleted
            if app.status != Status.SUBMITTED:
                raise NotCancellable(sent=app.status not in FINAL)
            # Only what was never handed over can be cancelled: a leased row
            # is being sent right now, and any earlier attempt may have
            # reached the agency even if it failed (a timeout, say).
            if (
                outbox is None
                or outbox.state != "PENDING"
                or outbox.attempts > 0
                or outbox.lease_owner is not None
            ):
                raise NotCancellable(sent=True)
            outbox.state = "CANCELLED"
            app.status = Status.CANCELLED
            app.updated_at = now
            app.next_poll_at = None
            app.history.append(ApplicationEvent(at=now, status=Status.CANCELLED))
        return app
