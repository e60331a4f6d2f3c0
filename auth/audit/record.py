"""Recording an access made by a principal (the resolvers' entry point)."""

from __future__ import annotations

from collections.abc import Iterable

from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from auth.audit.chain import append
from auth.audit.model import Access, ActorKind, Purpose
from auth.principal import Principal
from auth.request_id import REQUEST_ID
from gateway.clock import utcnow


def access_by(
    principal: Principal,
    citizen: str,
    *,
    agency: str | None,
    service_code: str | None,
    fields: Iterable[str],
    purpose: Purpose,
) -> Access:
    return Access(
        citizen=citizen,
        actor_kind=ActorKind(principal.kind.value),
        actor=principal.subject or "",
        agency=agency,
        service_code=service_code,
        fields=tuple(sorted(set(fields))),
        purpose=purpose,
        request_id=REQUEST_ID.get(),
    )


async def record(sessions: async_sessionmaker[AsyncSession], *accesses: Access) -> None:
    """Append in one transaction of its own. Callers record *before* handing
    the data out: if the log cannot be written, the data is not shown."""
    if not accesses:
        return
    now = utcnow()
    async with sessions.begin() as session:
        for access in accesses:
            await append(session, access, now)
