"""Recording an access made by a principal (the resolvers' entry point)."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Iterable, Sequence
from typing import Literal, Protocol

from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from auth.audit.chain import commit_alone
from auth.audit.model import Access, ActorKind, Purpose
from auth.audit.pg_direct import PostgresDirectWriter
from auth.audit.sqlite_inline import SqliteInlineWriter
from auth.principal import Principal
from auth.request_id import REQUEST_ID
from gateway.clock import utcnow
from gateway.db.engine import bound_engine, sqlite_file
from gateway.group_commit import GroupCommit, report_abandoned


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


# How a group of rows was committed: on the store's own fast path
# (sqlite_inline.py, pg_direct.py), or through the engine when that path
# could not (no head known yet, the head moved elsewhere, a locked file).
WrittenBy = Literal["direct", "engine"]
WRITTEN_BY: tuple[WrittenBy, ...] = ("direct", "engine")


class AccessLogObserver(Protocol):
    """Told of the resolvers' rows (metrics); set on ``AccessLog.observer``.
    Called on the event loop only."""

    def access_rows_written(self, path: WrittenBy, rows: int, seconds: float) -> None: ...

    def access_rows_waited(self, seconds: float) -> None: ...


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
        self.observer: AccessLogObserver | None = None
        self._commit = GroupCommit[tuple[Access, ...]](self._write)
        engine = bound_engine(sessions)
        self._direct: SqliteInlineWriter | PostgresDirectWriter | None = None
        if sqlite_file(engine) is not None:
            self._direct = SqliteInlineWriter(sessions)
        elif engine.dialect.name == "postgresql":
            self._direct = PostgresDirectWriter(engine)

    async def _write(self, batch: Sequence[tuple[Access, ...]]) -> None:
        accesses, at = [access for accesses in batch for access in accesses], utcnow()
        started = time.perf_counter()
        path: WrittenBy = "direct"
        if self._direct is None or not await self._direct.commit(accesses, at):
            path = "engine"
            await commit_alone(self.sessions, accesses, at)
        if self.observer is not None:
            self.observer.access_rows_written(path, len(accesses), time.perf_counter() - started)

    async def record(self, *accesses: Access) -> None:
        """Return once ``accesses`` are committed (the caller's data waits for this)."""
        if not accesses:
            return
        started = time.perf_counter()
        await self._commit(accesses)
        if self.observer is not None:
            self.observer.access_rows_waited(time.perf_counter() - started)

    async def aclose(self) -> None:
        await self._commit.aclose()
        if self._direct is not None:
            await self._direct.aclose()


class RowsWhenSent:
    """The rows of a call that hands citizens' data to an agency: started
    as the call is sent (``sending``, the connector's callback: a call
    refused before sending logs nothing) and written while the agency works,
    so the commit adds nothing to the wait; ``stored`` is awaited before the
    answer is handed out (no row, no data)."""

    __slots__ = ("_accesses", "_log", "_written")

    def __init__(self, log: AccessLog, accesses: Sequence[Access]) -> None:
        self._log = log
        self._accesses = accesses
        self._written: asyncio.Task[None] | None = None

    @property
    def sending(self) -> Callable[[], None] | None:
        return self._start if self._accesses else None

    def _start(self) -> None:
        self._written = asyncio.ensure_future(self._log.record(*self._accesses))

    async def stored(self) -> None:
        """Raises if the rows could not be written."""
        if self._written is not None:
            await self._written

    def abandoned(self) -> None:
        """The call was cut off or failed unforeseen: the rows are still
        written (the agency may have the data), and should that fail, no one
        is left to see it but the log."""
        if self._written is not None:
            self._written.add_done_callback(report_abandoned)
