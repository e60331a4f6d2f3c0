"""The data-access log over GraphQL: a citizen reads theirs, an operator
verifies the chain.

A citizen sees who touched their data (officer ids, app client ids, the
gateway) and why; an event never names another citizen, and nobody but the
citizen reads a citizen's log.
"""

from __future__ import annotations

import base64
import datetime as dt
from collections.abc import Sequence

import strawberry
from sqlalchemy import func, select

from auth.audit.model import ActorKind as ActorKindModel
from auth.audit.model import Purpose as PurposeModel
from auth.audit.record import access_by
from auth.audit.verify import verify
from auth.permissions import CitizenOnly, OperatorOnly
from auth.principal import PrincipalKind
from gateway.clock import aware
from gateway.db import tables
from schema import paging
from schema.context import Context
from schema.types import PageInfo

_PREFIX = "seq:"
ActorKind = strawberry.enum(ActorKindModel, description="Who touched the data")
AccessPurpose = strawberry.enum(PurposeModel, name="AccessPurpose", description="Why")

_READ_PURPOSE = {
    PrincipalKind.CITIZEN: PurposeModel.OWN_APPLICATION,
    PrincipalKind.OFFICER: PurposeModel.CASE_HANDLING,
    PrincipalKind.OPERATOR: PurposeModel.OPERATIONS,
    PrincipalKind.APP: PurposeModel.FOLLOW_UP,  # only ever an application it filed
}


@strawberry.type(description="One read or write of your data / Таны мэдээлэлд хандсан нэг удаа")
class AccessEvent:
    at: dt.datetime
    actor_kind: ActorKind  # type: ignore[valid-type]
    actor: str = strawberry.field(description="Officer id, app client id, or the gateway")
    agency: str | None
    service_code: str | None
    fields: list[str] = strawberry.field(description="Form field names (never values)")
    purpose: AccessPurpose  # type: ignore[valid-type]


@strawberry.type
class AccessEventConnection:
    total_count: int
    nodes: list[AccessEvent]
    page_info: PageInfo


@strawberry.type(description="The access log's hash chain, checked end to end")
class AuditVerification:
    ok: bool
    checked: int = strawberry.field(description="Rows that were checked and found sound")
    head_hash: str = strawberry.field(description="Keep a copy outside the database")
    first_bad_seq: int | None
    reason: str | None


async def record_application_reads(
    context: Context, apps: Sequence[tables.Application], *, with_form: bool
) -> None:
    """Log that the caller read ``apps`` (and, by name, their form fields when
    the form itself was shown), all in one transaction. Sandbox rows hold
    made-up data, nobody's: reading them is not logged."""
    principal = context.principal
    await context.services.access_log.record(
        *(
            access_by(
                principal, app.citizen, agency=app.agency, service_code=app.service_code,
                fields=sorted(app.form) if with_form else (), purpose=_READ_PURPOSE[principal.kind],
            )
            for app in apps
            if not app.sandbox
        ),
    )  # fmt: skip


async def record_application_list(context: Context) -> None:
    """Log that the citizen listed their own applications (``myApplications``).

    One row per listing, not one per application shown: the listing shows
    no form, only which applications exist and their status, all of them
    the caller's own, so one row says everything a row per item would;
    and rows per item would add up to a page size (up to 500) of rows to
    the single hash chain, each under its one lock, on every refresh of an
    app's list screen. Logged whether or not the page is empty: the
    citizen looked."""
    principal = context.principal
    assert principal.subject is not None
    await context.services.access_log.record(
        access_by(principal, principal.subject, agency=None, service_code=None, fields=(),
                  purpose=PurposeModel.APPLICATION_LIST),
    )  # fmt: skip


def _cursor(seq: int) -> str:
    return base64.urlsafe_b64encode(f"{_PREFIX}{seq}".encode()).decode()


def _seq(cursor: str) -> int | None:
    """The ``seq`` the cursor names; ``None`` when it is not one of ours."""
    try:
        raw = base64.urlsafe_b64decode(cursor.encode()).decode()
        return int(raw.removeprefix(_PREFIX)) if raw.startswith(_PREFIX) else None
    except (ValueError, UnicodeDecodeError):
        return None


@strawberry.type
class AccessLogQuery:
    @strawberry.field(
        description="Who read or wrote your data, newest first / Таны мэдээлэлд хэн хандсан",
        permission_classes=[CitizenOnly],
    )
    async def my_data_access_log(
        self, info: strawberry.Info, first: int = 20, after: str | None = None
    ) -> AccessEventConnection:
        size = paging.page_size(first, 20)
        before = paging.position(after, _seq)
        citizen = info.context.principal.subject
        mine = select(tables.AccessEvent).where(tables.AccessEvent.citizen == citizen)
        page = mine if before is None else mine.where(tables.AccessEvent.seq < before)
        async with info.context.services.store.sessions() as session:
            total = await session.scalar(select(func.count()).select_from(mine.subquery()))
            query = page.order_by(tables.AccessEvent.seq.desc()).limit(size + 1)
            rows = list((await session.scalars(query)).all())
        shown = rows[:size]
        return AccessEventConnection(
            total_count=int(total or 0),
            nodes=[_event(row) for row in shown],
            page_info=PageInfo(
                has_next_page=len(rows) > size,
                has_previous_page=before is not None,
                start_cursor=_cursor(shown[0].seq) if shown else None,
                end_cursor=_cursor(shown[-1].seq) if shown else None,
            ),
        )

    @strawberry.field(
        description="Check the access log's hash chain (operators)",
        permission_classes=[OperatorOnly],
    )
    async def audit_verify(self, info: strawberry.Info) -> AuditVerification:
        verdict = await verify(info.context.services.store.sessions)
        return AuditVerification(
            ok=verdict.ok,
            checked=verdict.checked,
            head_hash=verdict.head_hash,
            first_bad_seq=verdict.first_bad_seq,
            reason=verdict.reason,
        )


def _event(row: tables.AccessEvent) -> AccessEvent:
    return AccessEvent(
        at=aware(row.at),
        actor_kind=ActorKindModel(row.actor_kind),
        actor=row.actor,
        agency=row.agency,
        service_code=row.service_code,
        fields=list(row.fields),
        purpose=PurposeModel(row.purpose),
    )
