"""Loss and duplication under crashes: the durable delivery's promise, tested
with real processes and SIGKILL.

Each test submits 200 applications through GraphQL, spread over all 13
agencies (so all four back-end kinds), breaks something for real, and then
checks in the simulated agencies' *own* records (read from their workdir
after the simulator process has stopped, with the simulators' record
classes) that every idempotency key ``khaalga-<application id>`` was filed
exactly once, at its agency, under the reference the gateway shows, and
that nothing else was filed.

1. The simulator process (``python -m legacy``) is SIGKILLed twice
   mid-stream and restarted on the same workdir and ports; deliveries fail,
   breakers open, rows back off, and everything is delivered once it is back.
2. The gateway process (``khaalga serve``) is SIGKILLed while it holds leases
   on deliveries that slowed agencies are still working on (slowed through
   the simulators' ``--faults`` file, a test-only hook) and while
   submissions are still coming in; it is restarted on the same database
   (SQLite and PostgreSQL), the client sends unanswered submissions again
   with their idempotency keys, and the dead gateway's leases run out
   (``KHAALGA_LEASE_SECONDS``) and are taken over.
3. Three ``khaalga worker`` processes share one PostgreSQL outbox behind a
   gateway that runs none (``KHAALGA_WORKER=0``): no row is held by two
   workers, and each key reaches its agency in exactly one attempt.

Figures worth reading in a failure (and with ``-s``) are printed as
``durability:`` lines.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import time
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest
from sqlalchemy import select

from auth.dev_issuer import citizen, issue, load_or_create_key
from connectors.config import BackendEndpoint, Timeouts
from connectors.delivery import idempotency_key
from connectors.registry import ConnectorRegistry
from gateway.app import create_app
from gateway.catalog.loader import Catalog
from gateway.catalog.model import BackendKind
from gateway.clock import aware, utcnow
from gateway.db.engine import create_engine, session_factory
from gateway.db.migrate import upgrade_async
from gateway.db.tables import OutboxItem
from gateway.settings import ROOT, Settings
from legacy.samples import CITIZENS
from legacy.topology import default_ports, embedded_endpoints
from tests.support.durability import (
    Submissions,
    agency_attempts,
    agency_books,
    check_filed_exactly_once,
    outbox,
    plan,
    repeated_attempts,
    submit_all,
    wait_delivered,
)
from tests.support.gateway import Api, citizen_token, served
from tests.support.processes import (
    GatewayProcess,
    Simulators,
    free_port_block,
    gateway_env,
    worker_process,
)

pytestmark = pytest.mark.slow

COUNT = 200
REVIEW_SECONDS = 0.1  # applications soon reach a final status and stop being polled


def report(what: str, **figures: object) -> None:
    print(f"durability: {what}: " + ", ".join(f"{k}={v}" for k, v in figures.items()))


@dataclass
class Agencies:
    simulators: Simulators
    endpoints: dict[str, BackendEndpoint]
    workdir: Path


@pytest.fixture
def agencies(tmp_path: Path, catalog: Catalog) -> Iterator[Agencies]:
    """The 13 simulators as one separate OS process (not started yet), on a
    free block of 13 consecutive loopback ports, state under a tmp workdir."""
    base = free_port_block(len(catalog.agencies))
    workdir = tmp_path / "legacy"
    simulators = Simulators(workdir, base, REVIEW_SECONDS, logs=tmp_path)
    endpoints = embedded_endpoints(catalog, workdir, default_ports(catalog, base))
    try:
        yield Agencies(simulators, endpoints, workdir)
    finally:
        simulators.stop(final=True)


@dataclass
class Kill:
    """The moment the simulator process was SIGKILLed."""

    answered: int  # submissions answered so far
    delivered: int
    leased: int
    down_s: float = 0.0


def first_agency_of_each_kind(catalog: Catalog) -> dict[BackendKind, str]:
    found: dict[BackendKind, str] = {}
    for agency in catalog.agencies:
        found.setdefault(agency.backend.kind, agency.code)
    return found


def dev_tokens(var_dir: Path) -> dict[str, str]:
    key = load_or_create_key(var_dir / "keys")
    return {rn: issue(key, citizen(rn)) for rn in CITIZENS}


async def outbox_counts(database_url: str) -> tuple[Counter[str], list[OutboxItem]]:
    """(rows per state, rows leased and not done) of the gateway's outbox."""
    rows = await outbox(database_url)
    states = Counter(row.state for row in rows.values())
    leased = [r for r in rows.values() if r.state == "PENDING" and r.lease_owner is not None]
    return states, leased


# -- 1. the agencies die --------------------------------------------------------------


async def test_simulators_killed_and_restarted_mid_stream(
    tmp_path: Path, catalog: Catalog, agencies: Agencies
) -> None:
    sims = agencies.simulators
    settings = Settings(
        var_dir=tmp_path / "gateway",
        catalog_dir=ROOT / "catalog",
        backends=agencies.endpoints,
        # Short waits and rare status polls: the worker awaits each batch whole,
        # so a FILE request waiting out its timeout holds up every other
        # delivery (head-of-line blocking); the outages must hit deliveries.
        timeouts=Timeouts(connect=0.5, read=1.0, total=1.5),
        delivery_poll=0.05,
        status_poll=5.0,
        breaker_threshold=2,
        breaker_ttl=0.5,
        max_attempts=100,  # the row must outlive two outages, however often it is tried
        delivery_backoff=0.05,
        rate_limits="",
    )
    await upgrade_async(settings.database_url)
    app = create_app(settings)
    registry: ConnectorRegistry = app.state.services.registry
    started = time.monotonic()
    await asyncio.to_thread(sims.start)
    answered = 0
    kills: list[Kill] = []
    opened: dict[str, str] = {}  # agency -> kind, for every breaker seen OPEN

    async def kill_and_restart(down: float) -> None:
        # SOAP, REST and FILE agencies die with the process; SQL agencies stay
        # reachable (the gateway writes their database files), their review job dies.
        states, leased = await outbox_counts(settings.database_url)
        await asyncio.to_thread(sims.kill)
        killed_at = time.monotonic()
        kill = Kill(answered, states["DONE"], len(leased))
        kills.append(kill)
        await asyncio.sleep(down)  # submissions and delivery attempts go on meanwhile
        await asyncio.to_thread(sims.start)
        kill.down_s = round(time.monotonic() - killed_at, 1)

    async def chaos(first_kill: asyncio.Event) -> None:
        await first_kill.wait()
        await kill_and_restart(3.0)
        # Kill again in the middle of the backlog the first outage left behind.
        await asyncio.sleep(1.0)
        await kill_and_restart(2.0)

    async def watch_breakers() -> None:
        while True:
            for health in await registry.health():
                if health.breaker_state == "OPEN":
                    opened[health.agency] = health.backend_kind
            await asyncio.sleep(0.05)

    watcher = asyncio.create_task(watch_breakers())
    try:
        async with (
            served(app) as base_url,
            httpx.AsyncClient(base_url=base_url, timeout=30) as http,
        ):
            api = Api(http)
            planned = await plan(api, catalog, COUNT)
            apis = {rn: api.as_(citizen_token(settings, rn)) for rn in CITIZENS}
            first_kill = asyncio.Event()

            async def progress(submitted: int) -> None:
                nonlocal answered
                answered = submitted
                if submitted == COUNT // 4:
                    first_kill.set()

            chaos_task = asyncio.create_task(chaos(first_kill))
            try:
                submitted = await submit_all(apis, planned, concurrency=4, progress=progress)
                submit_s = time.monotonic() - started
                await asyncio.wait_for(asyncio.shield(chaos_task), 60)
            finally:
                chaos_task.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await chaos_task
            references = await wait_delivered(apis, submitted, time.monotonic() + 60)
            delivered_s = time.monotonic() - started
    finally:
        watcher.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await watcher
        await asyncio.to_thread(sims.stop)

    rows = await outbox(settings.database_url)
    books = await agency_books(catalog, agencies.workdir)
    received, filed = agency_attempts(books)
    report(
        "simulators killed",
        kills=[vars(kill) for kill in kills],
        breakers_seen_open=dict(Counter(opened.values())),
        submitted_after_s=round(submit_s, 1),
        all_delivered_after_s=round(delivered_s, 1),
        outbox=dict(Counter(r.state for r in rows.values())),
        failed_attempts_in_outbox=sum(r.attempts for r in rows.values()),
        most_failed_attempts_of_one_row=max(r.attempts for r in rows.values()),
        submits_received_by_logging_agencies=received,
        filed_there=filed,
        repeats_deduped=repeated_attempts(books),
    )
    # The premises: both kills hit a stream in progress, deliveries met the
    # outages, and breakers opened.
    assert len(kills) == 2
    assert all(kill.delivered < COUNT for kill in kills), kills
    assert sum(r.attempts for r in rows.values()) > 0, "no delivery attempt met an outage"
    assert opened, "no breaker opened: the outages were not noticed"
    # The promise.
    assert Counter(r.state for r in rows.values()) == {"DONE": COUNT}
    check_filed_exactly_once(books, submitted, references)


# -- 2. the gateway dies ----------------------------------------------------------------

SLOW = 1.5  # seconds each slowed agency takes per request until the gateway is killed
LEASE = 3.0  # KHAALGA_LEASE_SECONDS: about as long as the gateway takes to come back


async def test_gateway_killed_mid_delivery(
    tmp_path: Path, catalog: Catalog, agencies: Agencies, database_url: str
) -> None:
    sims = agencies.simulators
    var_dir = tmp_path / "var"
    env = gateway_env(
        var_dir=var_dir,
        database_url=database_url,
        endpoints=agencies.endpoints,
        port=free_port_block(1),
        KHAALGA_LEASE_SECONDS=str(LEASE),
    )
    gateway = GatewayProcess(env, tmp_path)
    # A SOAP, a REST and a FILE agency answer slowly, so the gateway dies holding
    # leases on requests those agencies are still working on (and which the
    # SOAP and REST ones file after it is gone: filed, never acknowledged).
    # Not an SQL agency: its "delay" is a table lock that makes inserts wait
    # for seconds, and the worker awaits a whole batch before it claims more.
    first = first_agency_of_each_kind(catalog)
    slow = {first[kind] for kind in (BackendKind.SOAP, BackendKind.REST, BackendKind.FILE)}
    started = time.monotonic()
    try:
        await asyncio.gather(asyncio.to_thread(sims.start), asyncio.to_thread(gateway.start))
        tokens = dev_tokens(var_dir)
        async with httpx.AsyncClient(base_url=gateway.url, timeout=30) as http:
            api = Api(http)
            planned = await plan(api, catalog, COUNT)
            apis = {rn: api.as_(token) for rn, token in tokens.items()}
            sims.set_faults({code: {"delay": SLOW} for code in slow})
            # Submissions go on through the kill: a request that got no answer is
            # sent again with its idempotency key once the gateway is back.
            submissions = Submissions()
            submitting = asyncio.create_task(
                submit_all(apis, planned, retry_for=60, into=submissions)
            )
            try:
                # Kill -9 while a slowed agency works on a delivery: claimed long
                # enough ago to have reached it, not so long ago that it has
                # answered (a claim's time is its lease's end minus the lease).
                deadline = time.monotonic() + 30
                while True:
                    if submitting.done():
                        submitting.result()  # a submission failed: raise it here
                    states, leased = await outbox_counts(database_url)
                    now = utcnow()
                    working = [
                        r
                        for r in leased
                        if r.agency in slow
                        and r.lease_until is not None
                        and 0.3 <= LEASE - (aware(r.lease_until) - now).total_seconds() <= 1.0
                    ]
                    if working:
                        break
                    assert time.monotonic() < deadline, (states, len(leased))
                    await asyncio.sleep(0.05)
                await asyncio.to_thread(gateway.kill)
                killed_at, killed_wall = time.monotonic(), utcnow()
                answered_before_kill = len(submissions.by_id)
                states, leased = await outbox_counts(database_url)
                assert leased, "the gateway died holding no lease: nothing was in flight"
                # Until its lease ends nobody else may send a leased row.
                held_until = {
                    idempotency_key(r.application_id): aware(r.lease_until)
                    for r in leased
                    if r.lease_until is not None
                }

                # The agencies recover (what they are working on they finish) and
                # the gateway comes back on the same database.
                sims.set_faults({})
                await asyncio.to_thread(gateway.start)
                down_s = time.monotonic() - killed_at
                submitted = await submitting
            finally:
                if not submitting.done():
                    submitting.cancel()
            submitted_s = time.monotonic() - started
            references = await wait_delivered(apis, submitted, time.monotonic() + 90)
            delivered_s = time.monotonic() - started
    finally:
        await asyncio.to_thread(gateway.stop, final=True)
        await asyncio.to_thread(sims.stop)

    rows = await outbox(database_url)
    assert set(rows) == set(submitted)
    assert Counter(r.state for r in rows.values()) == {"DONE": COUNT}
    books = await agency_books(catalog, agencies.workdir)
    per_kind = check_filed_exactly_once(books, submitted, references)
    received, filed = agency_attempts(books)
    # Filed while the dead gateway's lease still held: its attempt reached the
    # agency and was filed, but the gateway died before recording it.
    filed_unacknowledged = Counter(
        book.kind.value
        for book in books.values()
        for f in book.filings
        if f.idempotency_key in held_until
        and dt.datetime.fromtimestamp(f.filed_at, dt.UTC) < held_until[f.idempotency_key]
    )
    report(
        f"gateway killed ({database_url.partition('+')[0]})",
        submissions_answered_before_kill=answered_before_kill,
        submissions_sent_again=len(submissions.replayed),
        of_them_stored_before_the_kill=sum(
            1 for at in submissions.replayed.values() if at < killed_wall
        ),
        delivered_before_kill=states["DONE"],
        leases_held_by_the_dead_gateway=len(leased),
        of_them_at_slowed_agencies=len([r for r in leased if r.agency in slow]),
        filed_but_unacknowledged=dict(filed_unacknowledged),
        gateway_down_s=round(down_s, 1),
        all_submitted_after_s=round(submitted_s, 1),
        all_delivered_after_s=round(delivered_s, 1),
        filed_per_kind=dict(per_kind),
        submits_received_by_logging_agencies=received,
        filed_there=filed,
        repeats_deduped=repeated_attempts(books),
    )


# -- 3. several workers, one PostgreSQL outbox ------------------------------------------


@pytest.mark.postgres
@pytest.mark.parametrize("database_url", ["postgres"], indirect=True)
async def test_three_workers_share_one_postgres_outbox(
    tmp_path: Path, catalog: Catalog, agencies: Agencies, database_url: str
) -> None:
    sims = agencies.simulators
    var_dir = tmp_path / "var"
    endpoints = agencies.endpoints
    gateway = GatewayProcess(
        gateway_env(
            var_dir=var_dir,
            database_url=database_url,
            endpoints=endpoints,
            port=free_port_block(1),
            worker=False,
        ),
        tmp_path,
    )
    worker_env = gateway_env(var_dir=var_dir, database_url=database_url, endpoints=endpoints)
    workers = [worker_process(worker_env, tmp_path, f"worker-{n}") for n in range(3)]
    # SOAP and REST agencies answer a little slowly, so leases are held long
    # enough for the workers to meet on the same rows.
    network = (BackendKind.SOAP, BackendKind.REST)
    slow = [a.code for a in catalog.agencies if a.backend.kind in network]
    started = time.monotonic()
    try:
        await asyncio.gather(asyncio.to_thread(sims.start), asyncio.to_thread(gateway.start))
        sims.set_faults({code: {"delay": 0.3} for code in slow})
        for worker in workers:
            worker.spawn()
        tokens = dev_tokens(var_dir)
        engine = create_engine(database_url)
        sessions = session_factory(engine)
        # Who holds which row, sampled while they work: application id -> owners.
        holders: dict[str, set[str]] = {}
        stop_sampling = asyncio.Event()

        async def sample_lease_owners() -> None:
            query = select(OutboxItem.application_id, OutboxItem.lease_owner).where(
                OutboxItem.lease_owner.is_not(None)
            )
            while not stop_sampling.is_set():
                async with sessions() as session:
                    for application_id, owner in (await session.execute(query)).all():
                        if owner is not None:
                            holders.setdefault(application_id, set()).add(owner)
                await asyncio.sleep(0.02)

        sampler = asyncio.create_task(sample_lease_owners())
        try:
            async with httpx.AsyncClient(base_url=gateway.url, timeout=30) as http:
                api = Api(http)
                planned = await plan(api, catalog, COUNT)
                apis = {rn: api.as_(token) for rn, token in tokens.items()}
                submitted = await submit_all(apis, planned)
                references = await wait_delivered(apis, submitted, time.monotonic() + 60)
                delivered_s = time.monotonic() - started
        finally:
            stop_sampling.set()
            await sampler
            await engine.dispose()
        for worker in workers:
            assert worker.running, worker.fail("a worker died")
    finally:
        for worker in workers:
            await asyncio.to_thread(worker.stop, final=True)
        await asyncio.to_thread(gateway.stop, final=True)
        await asyncio.to_thread(sims.stop)

    rows = await outbox(database_url)
    # One outbox row per application, delivered.
    assert set(rows) == set(submitted)
    assert Counter(r.state for r in rows.values()) == {"DONE": COUNT}
    # A failed attempt is no fault here (a back end timing out on a loaded
    # machine is retried under the same key); the workers' logs say why.
    failed: Counter[str] = Counter()
    for row in rows.values():
        failed[row.agency] += row.attempts
    logged = "\n".join(w.log.read_text(errors="replace") for w in workers).splitlines()
    retried = [line for line in logged if "attempt" in line]
    books = await agency_books(catalog, agencies.workdir)
    per_kind = check_filed_exactly_once(books, submitted, references)
    # The agencies that log every SUBMIT (SOAP, REST, FILE) received each key
    # once, but for what a failed attempt on record explains: a repeat without
    # one means a worker sent an application another worker was sending or had sent.
    surplus = repeated_attempts(books)
    unexplained = {agency: n for agency, n in surplus.items() if n > failed[agency]}
    assert not unexplained, (unexplained, retried)
    received, filed = agency_attempts(books)
    # No row seen leased was ever held by two workers, and the workers really
    # did share the work (the premise of this test).
    shared = {a: o for a, o in holders.items() if len(o) > 1}
    assert not shared, f"rows claimed by more than one worker: {shared}"
    per_worker = Counter(next(iter(o)) for o in holders.values())
    assert len(per_worker) >= 2, per_worker
    report(
        "three workers",
        rows_seen_leased=len(holders),
        rows_seen_per_worker=sorted(per_worker.values()),
        all_delivered_after_s=round(delivered_s, 1),
        filed_per_kind=dict(per_kind),
        submits_received_by_logging_agencies=received,
        filed_there=filed,
        failed_attempts_retried=sum(failed.values()),
        sql_filings_without_attempt_log=sum(
            len(b.filings) for b in books.values() if b.attempts is None
        ),
    )
