"""Recording an access made by a principal (the resolvers' entry point)."""

from __future__ import annotations

from collections.abc import Iterable, Sequence

from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from auth.audit.chain import commit_alone
from auth.audit.model import Access, ActorKind, Purpose
from auth.audit.pg_direct import PostgresDirectWriter
from auth.audit.sqlite_inline import SqliteInlineWriter
from auth.principal import Principal
from auth.request_id import REQUEST_ID
from gateway.clock import utcnow
from gateway.db.engine import bound_engine, sqlite_file
from gateway.group_commit import GroupCommit


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
    """Append in one transaction of its own (tools and tests; the resolvers
    go through ``AccessLog``). Callers record *before* handing the data out:
    if the log cannot be written, the data is not shown."""
    await commit_alone(sessions, accesses, utcnow())


class AccessLog:
    """The resolvers' recorder. Every row takes the one chain head's lock
    until its commit, so one transaction per request queued every lookup
    behind the others (a fan-out's three lookups behind each other): rows
    recorded while a commit is under way go together in the next one
    (``gateway/group_commit.py``). ``record`` still returns only once its
    rows are committed. Each database has a faster way to write them than
    the engine; when it cannot (the chain head moved elsewhere, a locked
    file), the engine's path writes them."""

    def __init__(self, sessions: async_sessionmaker[AsyncSession]) -> None:
        self.sessions = sessions
        self._commit = GroupCommit[tuple[Access, ...]](self._write)
        engine = bound_engine(sessions)
        self._direct: SqliteInlineWriter | PostgresDirectWriter | None = None
        if sqlite_file(engine) is not None:
            self._direct = SqliteInlineWriter(sessions)
        elif engine.dialect.name == "postgresql":
            self._direct = PostgresDirectWriter(engine)

    async def _write(self, batch: Sequence[tuple[Access, ...]]) -> None:
        accesses, at = [access for accesses in batch for access in accesses], utcnow()
        if self._direct is None or not await self._direct.commit(accesses, at):
            await commit_alone(self.sessions, accesses, at)

    async def record(self, *accesses: Access) -> None:
        if accesses:
            await self._commit(accesses)

    async def aclose(self) -> None:
        await self._commit.aclose()
        if self._direct is not None:
            await self._direct.aclose()
