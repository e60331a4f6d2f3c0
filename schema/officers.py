"""Officers: their agency's applications, and decisions on services whose
back end keeps no workflow of its own (catalog ``gateway_workflow = true``).

An officer sees exactly their agency's applications (the store scopes the
query by the token's agency), and every application shown is recorded in
its citizen's access log, before it is returned.
"""

from __future__ import annotations

from typing import cast

import strawberry
from sqlalchemy import select
from strawberry.scalars import JSON

from auth.audit.chain import append
from auth.audit.model import Purpose
from auth.audit.record import access_by
from auth.permissions import OfficerOnly
from gateway.applications import Status, decode_cursor, encode_cursor
from gateway.catalog.model import Text
from gateway.clock import utcnow
from gateway.db import tables
from gateway.db.locks import write_first
from schema import errors, paging
from schema.access_log import record_application_reads
from schema.context import Context
from schema.types import Application, ApplicationStatus, PageInfo

MAX_NOTE = 2000
# The decisions an officer may take from each status. DELIVERED and
# SUBMITTED both mean "not looked at yet"; final statuses take none.
NEXT: dict[Status, frozenset[Status]] = {
    Status.SUBMITTED: frozenset({Status.IN_REVIEW, Status.NEEDS_INFO, Status.REJECTED}),
    Status.DELIVERED: frozenset({Status.IN_REVIEW, Status.NEEDS_INFO, Status.REJECTED}),
    Status.IN_REVIEW: frozenset({Status.NEEDS_INFO, Status.APPROVED, Status.REJECTED}),
    Status.NEEDS_INFO: frozenset({Status.IN_REVIEW, Status.REJECTED}),
    Status.APPROVED: frozenset({Status.ISSUED}),
}
_LONG_NOTE = Text(mn=f"{MAX_NOTE} тэмдэгтээс ихгүй", en=f"At most {MAX_NOTE} characters")


@strawberry.type(description="An application as its agency's officer handles it")
class CaseFile:
    application: Application
    form: JSON = strawberry.field(description="The citizen's form, as submitted")


@strawberry.type
class CaseFileConnection:
    total_count: int
    nodes: list[CaseFile]
    page_info: PageInfo


@strawberry.type
class OfficerQuery:
    @strawberry.field(
        description="Your agency's applications, newest first (officers)",
        permission_classes=[OfficerOnly],
    )
    async def agency_applications(
        self,
        info: strawberry.Info,
        status: ApplicationStatus | None = None,  # type: ignore[valid-type]
        first: int = 20,
        after: str | None = None,
    ) -> CaseFileConnection:
        size = paging.page_size(first, 20)
        position = paging.position(after, decode_cursor)
        context: Context = info.context
        page = await context.services.store.list(
            context.principal, Status(status) if status else None, size, position
        )
        await record_application_reads(context, page.items, with_form=True)
        nodes = [
            CaseFile(application=Application.of(a), form=cast(JSON, a.form)) for a in page.items
        ]
        return CaseFileConnection(
            total_count=page.total,
            nodes=nodes,
            page_info=PageInfo.of(
                [encode_cursor(a) for a in page.items], page.has_next, after is not None
            ),
        )


@strawberry.type
class OfficerMutation:
    @strawberry.mutation(
        description="Decide on an application whose back end has no workflow (officers)",
        permission_classes=[OfficerOnly],
    )
    async def update_application_status(
        self,
        info: strawberry.Info,
        id: strawberry.ID,
        status: ApplicationStatus,  # type: ignore[valid-type]
        note: str | None = None,
    ) -> Application:
        if note is not None and len(note) > MAX_NOTE:
            raise errors.bad_user_input({"note": _LONG_NOTE})
        return Application.of(await _decide(info.context, str(id), Status(status), note))


async def _decide(
    context: Context, app_id: str, status: Status, note: str | None
) -> tables.Application:
    principal = context.principal
    now = utcnow()
    async with context.services.store.sessions.begin() as session:
        await write_first(session)
        query = select(tables.Application).where(
            tables.Application.id == app_id, tables.Application.agency == principal.agency
        )
        app = (await session.scalars(query.with_for_update())).first()
        if app is None:
            raise errors.not_found("Өргөдөл", "Application")
        service = context.services.catalog.service(app.service_code)
        if service is None or not service.gateway_workflow:
            raise errors.conflict(
                "Энэ үйлчилгээний төлөвийг байгууллагын систем өөрөө шийднэ",
                "This service's status comes from the agency's own system",
            )
        if status not in NEXT.get(Status(app.status), frozenset()):
            raise errors.conflict(
                f"{app.status} төлөвөөс {status} руу шилжих боломжгүй",
                f"An application cannot go from {app.status} to {status}",
            )
        app.status = status
        app.updated_at = now
        app.next_poll_at = None  # the agency has no status to poll for this service
        app.history.append(tables.ApplicationEvent(at=now, status=status, note=note))
        # Same transaction: the decision and its log row commit together.
        await append(
            session,
            access_by(
                principal, app.citizen, agency=app.agency, service_code=app.service_code,
                fields=(), purpose=Purpose.STATUS_DECISION,
            ),
            now,
        )  # fmt: skip
    return app
