"""Durable delivery: the outbox worker and the status poller.

Exactly once at the agency comes from two halves: the outbox row is
committed with the application (never lost), and every attempt carries the
same idempotency key, ``khaalga-<application id>``, which the back end
dedupes on (never filed twice). A worker claims a row with a lease; if it
dies mid-delivery (``kill -9``) the lease runs out and another attempt
resends under the same key. On PostgreSQL candidates are selected
``FOR UPDATE SKIP LOCKED`` so several workers never contend for one row;
the conditional lease update makes the claim safe on SQLite as well.

Sandbox rows (filed by sandbox apps) go to the sandbox registry only, never
to the real one, and leave no data-access log rows: they hold made-up data.
Every attempt that may have handed a real form to an agency is logged in the
citizen's data-access log, delivered or not (``ConnectorError.sent``).
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import functools
import logging
import random
import uuid
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass

from sqlalchemy import false, func, select, update
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from auth.audit.chain import append
from auth.audit.model import Access, Purpose, delivery_access
from connectors.errors import ConnectorError, PermanentError
from connectors.memory import sandbox_registry
from connectors.registry import ConnectorRegistry
from gateway.applications import FINAL, Status
from gateway.catalog.loader import Catalog
from gateway.clock import aware, utcnow
from gateway.db.locks import write_first
from gateway.db.tables import Application, ApplicationEvent, OutboxItem
from gateway.events import ApplicationEvents, MemoryEvents

log = logging.getLogger("khaalga.delivery")

AGENCY_STATUSES = frozenset(
    {"DELIVERED", "IN_REVIEW", "NEEDS_INFO", "APPROVED", "REJECTED", "ISSUED"}
)


def idempotency_key(application_id: str) -> str:
    return f"khaalga-{application_id}"


def backoff(attempts: int, base: float = 1.0, cap: float = 300.0) -> float:
    """Exponential backoff with full jitter. Written here because tenacity's
    wait strategies need a live RetryState, and our retries span processes
    and restarts with the attempt count kept in the outbox row."""
    return random.uniform(0, min(cap, base * 2 ** max(0, attempts - 1)))


class DeliveryWorker:
    def __init__(
        self,
        sessions: async_sessionmaker[AsyncSession],
        catalog: Catalog,
        registry: ConnectorRegistry,
        *,
        lease_seconds: float = 30.0,
        max_attempts: int = 12,
        poll_interval: float = 0.2,
        status_interval: float = 1.0,
        batch: int = 20,
        per_agency: int = 8,
        backoff_base: float = 1.0,
        events: ApplicationEvents | None = None,
        sandbox: ConnectorRegistry | None = None,
    ) -> None:
        self.sessions = sessions
        self.events = events or MemoryEvents()
        self.catalog = catalog
        self.registry = registry
        # Built here when not given, so a sandbox row can never fall back to
        # ``registry``, whoever builds the worker.
        self.sandbox = sandbox if sandbox is not None else sandbox_registry(catalog)
        self.owner = f"worker-{uuid.uuid4().hex[:12]}"
        self.lease = dt.timedelta(seconds=lease_seconds)
        self.max_attempts = max_attempts
        self.poll_interval = poll_interval
        self.status_interval = status_interval
        self.batch = batch  # deliveries in flight at most, and status polls per round
        self.per_agency = per_agency  # of those, at most this many to one agency
        self.backoff_base = backoff_base
        self._stopping = asyncio.Event()
        self._wakeup = asyncio.Event()
        self._in_flight: dict[int, tuple[str, asyncio.Task[None]]] = {}

    async def run(self) -> None:
        """Deliver and poll until ``stop`` is called (or the task is cancelled).

        Deliveries are not sent in rounds that wait for their slowest call:
        each runs as a task of its own and a freed slot is refilled at once,
        with at most ``per_agency`` slots to one agency, so an agency that
        answers in 30 s holds a few slots while the others keep flowing.
        Status polls run in a loop of their own for the same reason."""
        try:
            await asyncio.gather(self._delivery_loop(), self._status_loop())
        except asyncio.CancelledError:
            for _, task in self._in_flight.values():
                task.cancel()
            raise

    def stop(self) -> None:
        """Make ``run`` return once the deliveries under way are finished.
        Cancelling instead cuts queries and agency calls in half: a database
        connection being opened at that moment is leaked, and a delivery the
        agency has already filed waits for its lease to run out before it is
        recorded."""
        self._stopping.set()
        self._wakeup.set()

    async def _delivery_loop(self) -> None:
        while not self._stopping.is_set():
            try:
                started = await self._start_due()
            except Exception:  # the loop must outlive a database hiccup
                log.exception("delivery loop failed; retrying")
                started = []
            if not started:
                # Woken early when a delivery finishes and frees a slot.
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._wakeup.wait(), self.poll_interval)
                self._wakeup.clear()
        in_flight = [task for _, task in self._in_flight.values()]
        await asyncio.gather(*in_flight, return_exceptions=True)

    async def _status_loop(self) -> None:
        while not self._stopping.is_set():
            try:
                polled = await self.poll_statuses()
            except Exception:
                log.exception("status poll failed; retrying")
                polled = 0
            if not polled:
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._stopping.wait(), self.poll_interval)

    # -- delivery ---------------------------------------------------------

    async def _claim(self, room: int, busy: Counter[str]) -> list[tuple[int, str]]:
        """Lease up to ``room`` due rows, leaving alone agencies whose slots
        (``busy`` in flight) are full."""
        now = utcnow()
        full = [agency for agency, count in busy.items() if count >= self.per_agency]
        claimed: list[tuple[int, str]] = []
        async with self.sessions.begin() as session:
            await write_first(session)
            candidates = (
                await session.execute(
                    select(OutboxItem.id, OutboxItem.agency)
                    .where(
                        OutboxItem.state == "PENDING",
                        OutboxItem.next_attempt_at <= now,
                        (OutboxItem.lease_until.is_(None)) | (OutboxItem.lease_until < now),
                        OutboxItem.agency.not_in(full),
                    )
                    .order_by(OutboxItem.next_attempt_at)
                    .limit(room)
                    .with_for_update(skip_locked=True)
                )
            ).all()
            for item_id, agency in candidates:
                if busy[agency] >= self.per_agency:
                    continue  # left for a later round, unleased
                result = await session.execute(
                    update(OutboxItem)
                    .where(
                        OutboxItem.id == item_id,
                        OutboxItem.state == "PENDING",
                        (OutboxItem.lease_until.is_(None)) | (OutboxItem.lease_until < now),
                    )
                    .values(lease_owner=self.owner, lease_until=now + self.lease)
                )
                if result.rowcount == 1:  # type: ignore[attr-defined]
                    claimed.append((item_id, agency))
                    busy[agency] += 1
        return claimed

    async def _start_due(self) -> list[asyncio.Task[None]]:
        room = self.batch - len(self._in_flight)
        if room <= 0:
            return []
        busy = Counter(agency for agency, _ in self._in_flight.values())
        started = []
        for item_id, agency in await self._claim(room, busy):
            task = asyncio.create_task(self._deliver(item_id))
            self._in_flight[item_id] = (agency, task)
            task.add_done_callback(functools.partial(self._finished, item_id))
            started.append(task)
        return started

    def _finished(self, item_id: int, task: asyncio.Task[None]) -> None:
        self._in_flight.pop(item_id, None)
        self._wakeup.set()
        if not task.cancelled() and task.exception() is not None:
            # The row keeps its lease and is retried when it runs out.
            log.error("delivery of outbox item %s failed", item_id, exc_info=task.exception())

    async def deliver_due(self) -> int:
        """Claim what is due and deliver it; return once those are done."""
        started = await self._start_due()
        await asyncio.gather(*started, return_exceptions=True)
        return len(started)

    async def _deliver(self, item_id: int) -> None:
        async with self.sessions() as session:
            item = await session.get(OutboxItem, item_id)
            app = await session.get(Application, item.application_id) if item else None
        if item is None or app is None:
            return
        sandbox = item.sandbox or app.sandbox  # either flag keeps it away from the agencies
        service = self.catalog.service(app.service_code)
        if service is None:
            await self._fail(item_id, PermanentError(app.agency, "service left the catalog"))
            return
        registry = self.sandbox if sandbox else self.registry
        try:
            response = await registry.submit(service, app.form, idempotency_key(app.id))
        except ConnectorError as exc:
            sent = None
            if exc.sent and not sandbox:
                sent = delivery_access(app.citizen, app.agency, app.service_code, app.form,
                                       Purpose.DELIVERY_ATTEMPT)  # fmt: skip
            await self._fail(item_id, exc, sent)
            return
        now = utcnow()
        async with self.sessions.begin() as session:
            owned = await session.execute(
                update(OutboxItem)
                .where(OutboxItem.id == item_id, OutboxItem.lease_owner == self.owner)
                .values(state="DONE", lease_owner=None, lease_until=None, last_error=None)
            )
            # Handing the form to the agency is an access to the citizen's
            # data: logged in the same transaction that records it as done,
            # and also when our lease ran out, since the form was handed over.
            # The chain head is always locked last, as everywhere else.
            handed_over = delivery_access(app.citizen, app.agency, app.service_code, app.form)
            if owned.rowcount != 1:  # type: ignore[attr-defined]
                if not sandbox:
                    await append(session, handed_over, now)
                return  # our lease ran out and another worker took over
            app = await session.get(Application, app.id, with_for_update=True)
            assert app is not None
            if not sandbox:
                await append(session, handed_over, now)
            app.reference = response.reference
            if app.status == Status.SUBMITTED:
                app.status = Status.DELIVERED
                app.updated_at = now
                app.history.append(ApplicationEvent(at=now, status=Status.DELIVERED))
                # No agency stands behind a sandbox reference: its status never moves.
                app.next_poll_at = (
                    None if sandbox else now + dt.timedelta(seconds=self.status_interval)
                )
        await self.events.publish(app.id)  # after the commit, so subscribers see it

    async def _fail(self, item_id: int, error: ConnectorError, sent: Access | None = None) -> None:
        """``sent``: the access to log when the form may have reached the
        agency all the same (a timeout or 5xx after sending)."""
        now = utcnow()
        reason = f"{type(error).__name__}: {error.message}"
        async with self.sessions.begin() as session:
            await write_first(session)
            item = await session.get(OutboxItem, item_id, with_for_update=True)
            if sent is not None:  # after the row lock, in the same order as a success
                await append(session, sent, now)
            if item is None or item.lease_owner != self.owner:
                return
            item.attempts += 1
            item.last_error = reason
            item.lease_owner = None
            item.lease_until = None
            if isinstance(error, PermanentError) or item.attempts >= self.max_attempts:
                item.state = "DEAD"
                log.warning("outbox item %s dead-lettered: %s", item_id, reason)
            else:
                delay = backoff(item.attempts, self.backoff_base)
                item.next_attempt_at = now + dt.timedelta(seconds=delay)
                log.info(
                    "outbox item %s attempt %d failed, retry in %.1fs: %s",
                    item_id, item.attempts, delay, reason,
                )  # fmt: skip

    # -- status flowing back ------------------------------------------------

    async def poll_statuses(self) -> int:
        now = utcnow()
        async with self.sessions.begin() as session:
            await write_first(session)
            due = (
                await session.scalars(
                    select(Application)
                    .where(
                        Application.next_poll_at <= now,
                        Application.reference.is_not(None),
                        Application.status.not_in([s.value for s in FINAL]),
                    )
                    .limit(self.batch)
                    .with_for_update(skip_locked=True)
                )
            ).all()
            claimed = []
            for app in due:
                # Claim by pushing the next poll out; a second worker's
                # conditional update on the old value then matches nothing.
                result = await session.execute(
                    update(Application)
                    .where(Application.id == app.id, Application.next_poll_at == app.next_poll_at)
                    .values(next_poll_at=now + self.lease)
                )
                if result.rowcount == 1:  # type: ignore[attr-defined]
                    claimed.append((app.id, app.service_code, app.reference, app.sandbox))
        await asyncio.gather(*(self._poll(*entry) for entry in claimed))
        return len(claimed)

    async def _poll(
        self, app_id: str, service_code: str, reference: str | None, sandbox: bool
    ) -> None:
        service = self.catalog.service(service_code)
        if service is None or reference is None:
            return
        registry = self.sandbox if sandbox else self.registry
        try:
            response = await registry.status(service, reference)
        except ConnectorError as exc:
            log.info("status poll for %s failed: %s", service_code, type(exc).__name__)
            response = None
        now = utcnow()
        async with self.sessions.begin() as session:
            await write_first(session)
            app = await session.get(Application, app_id, with_for_update=True)
            if app is None:
                return
            app.next_poll_at = now + dt.timedelta(seconds=self.status_interval)
            if response is None or response.status not in AGENCY_STATUSES:
                return
            if app.status in FINAL or response.status == app.status:
                if app.status in FINAL:
                    app.next_poll_at = None
                return
            app.status = response.status
            app.updated_at = now
            app.history.append(ApplicationEvent(at=now, status=response.status, note=response.note))
            if app.status in FINAL:
                app.next_poll_at = None
        await self.events.publish(app_id)


async def replay(sessions: async_sessionmaker[AsyncSession], item_ids: Sequence[int] | None) -> int:
    """Put dead-lettered items back in the queue; all of them when ids is None."""
    query = update(OutboxItem).where(OutboxItem.state == "DEAD")
    if item_ids is not None:
        query = query.where(OutboxItem.id.in_(item_ids))
    async with sessions.begin() as session:
        result = await session.execute(
            query.values(state="PENDING", attempts=0, next_attempt_at=utcnow(), last_error=None)
        )
    return int(result.rowcount)  # type: ignore[attr-defined]


@dataclass(frozen=True, slots=True)
class Backlog:
    """One agency's undelivered outbox items (for the ``/metrics`` gauges)."""

    pending: int = 0
    dead: int = 0
    oldest_pending: dt.datetime | None = None


async def outbox_backlog(sessions: async_sessionmaker[AsyncSession]) -> dict[str, Backlog]:
    """Pending and dead items per agency, and when the oldest pending one was
    stored. One grouped query on the ``(state, next_attempt_at)`` index; DONE
    rows, the bulk of the table, are never counted."""
    query = (
        select(OutboxItem.agency, OutboxItem.state, func.count(), func.min(OutboxItem.created_at))
        .where(OutboxItem.state.in_(("PENDING", "DEAD")), OutboxItem.sandbox == false())
        .group_by(OutboxItem.agency, OutboxItem.state)
    )
    async with sessions() as session:
        rows = (await session.execute(query)).all()
    pending: dict[str, tuple[int, dt.datetime | None]] = {}
    dead: dict[str, int] = {}
    for agency, state, count, oldest in rows:
        if state == "PENDING":
            pending[agency] = (count, aware(oldest) if oldest is not None else None)
        else:
            dead[agency] = count
    return {
        agency: Backlog(
            pending=pending.get(agency, (0, None))[0],
            dead=dead.get(agency, 0),
            oldest_pending=pending.get(agency, (0, None))[1],
        )
        for agency in pending.keys() | dead.keys()
    }
