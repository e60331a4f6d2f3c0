"""What the durability tests share: a plan of applications over agencies of
every back-end kind, submitting it through GraphQL, waiting for delivery, and
reading what each simulated agency itself has on record."""

from __future__ import annotations

import asyncio
import datetime as dt
import time
from collections import Counter
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
from sqlalchemy import select

from connectors.delivery import idempotency_key
from gateway.catalog.loader import Catalog
from gateway.catalog.model import BackendKind, ServiceKind
from gateway.db.engine import create_engine, session_factory
from gateway.db.tables import OutboxItem
from legacy.files import FileSimulator
from legacy.records import AgencyRecords, Filing
from legacy.samples import CITIZENS, sample_form
from legacy.topology import build_simulators
from tests.support.gateway import Api

FORM_QUERY = """query($code: ID!) { service(code: $code) { form { fields {
  name type required pattern min max maxLength options { value } } } } }"""
SUBMIT = """mutation($c: ID!, $f: JSON!, $k: String) { submitApplication(serviceCode: $c,
  form: $f, idempotencyKey: $k) { application { id status submittedAt } } }"""
MINE = """query($first: Int!, $after: String) { myApplications(first: $first, after: $after) {
  edges { node { id status reference } } pageInfo { hasNextPage endCursor } } }"""
# An application the agency has: DELIVERED or any later status it reported.
DELIVERED_OR_LATER = frozenset(
    {"DELIVERED", "IN_REVIEW", "NEEDS_INFO", "APPROVED", "REJECTED", "ISSUED"}
)
_PAGE = 40


@dataclass(frozen=True)
class Planned:
    number: int
    service_code: str
    agency: str
    kind: BackendKind
    citizen: str
    form: dict[str, Any]

    @property
    def client_key(self) -> str:
        return f"durability-{self.number:04d}"


async def plan(api: Api, catalog: Catalog, count: int) -> list[Planned]:
    """``count`` applications, round robin over all 13 agencies (so every kind),
    each agency's APPLICATION services in turn, and the made-up citizens in turn;
    forms built by ``sample_form`` from each service's public form description."""
    by_agency = {
        agency.code: [s for s in agency.services if s.kind is ServiceKind.APPLICATION]
        for agency in catalog.agencies
    }
    agencies = [code for code, services in by_agency.items() if services]
    fields: dict[str, list[dict[str, Any]]] = {}
    planned = []
    for number in range(count):
        agency_code = agencies[number % len(agencies)]
        services = by_agency[agency_code]
        service = services[(number // len(agencies)) % len(services)]
        if service.code not in fields:
            data = await api.data(FORM_QUERY, {"code": service.code})
            fields[service.code] = data["service"]["form"]["fields"]
        agency = catalog.agency(agency_code)
        assert agency is not None
        citizen = CITIZENS[number % len(CITIZENS)]
        planned.append(
            Planned(
                number,
                service.code,
                agency_code,
                agency.backend.kind,
                citizen,
                sample_form(fields[service.code], citizen),
            )
        )
    assert {p.kind for p in planned} == set(BackendKind), "every back-end kind must be covered"
    return planned


@dataclass
class Submissions:
    """Application id -> plan; and the applications whose first request got no
    answer and was sent again: id -> when the gateway says it was stored."""

    by_id: dict[str, Planned] = field(default_factory=dict)
    replayed: dict[str, dt.datetime] = field(default_factory=dict)


async def submit_all(
    apis: Mapping[str, Api],
    planned: Sequence[Planned],
    *,
    concurrency: int = 8,
    progress: Callable[[int], Awaitable[None]] | None = None,
    retry_for: float = 0.0,
    into: Submissions | None = None,
) -> dict[str, Planned]:
    """Submit every planned application (``apis`` by citizen); application id -> plan.

    ``progress(n)`` is awaited after the n-th answer. With ``retry_for`` a
    request that got no answer (the gateway died or is down) is sent again,
    with the same client idempotency key, for up to that many seconds, as a
    client must: the gateway answers with the application the first request
    stored, if it stored one. ``into`` is filled as answers come in."""
    slots = asyncio.Semaphore(concurrency)
    result = into if into is not None else Submissions()
    loop = asyncio.get_running_loop()

    async def one(item: Planned) -> None:
        variables = {"c": item.service_code, "f": item.form, "k": item.client_key}
        deadline = loop.time() + retry_for
        sent_again = False
        async with slots:
            while True:
                try:
                    data = await apis[item.citizen].data(SUBMIT, variables)
                    break
                except httpx.TransportError:
                    if loop.time() > deadline:
                        raise
                    sent_again = True
                    await asyncio.sleep(0.2)
        application = data["submitApplication"]["application"]
        if sent_again:
            stored_at = dt.datetime.fromisoformat(application["submittedAt"])
            result.replayed[application["id"]] = stored_at
        # A replayed request answers with the stored application, maybe delivered by now.
        assert application["status"] in {"SUBMITTED", *DELIVERED_OR_LATER}, application
        assert application["id"] not in result.by_id, "two plans answered with one application"
        result.by_id[application["id"]] = item
        if progress is not None:
            await progress(len(result.by_id))

    await asyncio.gather(*(one(item) for item in planned))
    assert len(result.by_id) == len(planned), "each submission must be its own application"
    return result.by_id


async def statuses(apis: Mapping[str, Api]) -> dict[str, tuple[str, str | None]]:
    """Every application of every citizen: id -> (status, reference), as the API shows it."""
    seen: dict[str, tuple[str, str | None]] = {}
    for api in apis.values():
        after: str | None = None
        while True:
            page = (await api.data(MINE, {"first": _PAGE, "after": after}))["myApplications"]
            for edge in page["edges"]:
                node = edge["node"]
                seen[node["id"]] = (node["status"], node["reference"])
            if not page["pageInfo"]["hasNextPage"]:
                break
            after = page["pageInfo"]["endCursor"]
    return seen


async def wait_delivered(
    apis: Mapping[str, Api], expected: Mapping[str, Planned], deadline: float
) -> dict[str, str]:
    """Poll the API until every expected application is DELIVERED or later with a
    reference; application id -> reference. Fails at ``deadline`` (monotonic)."""
    while True:
        seen = await statuses(apis)
        assert set(seen) == set(expected), "the API lists exactly the submitted applications"
        done = {
            app_id: reference
            for app_id, (status, reference) in seen.items()
            if status in DELIVERED_OR_LATER and reference
        }
        if len(done) == len(expected):
            return done
        if time.monotonic() > deadline:
            late = Counter((expected[a].agency, seen[a][0]) for a in expected if a not in done)
            raise AssertionError(f"not delivered in time: {len(expected) - len(done)}: {late}")
        await asyncio.sleep(0.25)


async def outbox(database_url: str) -> dict[str, OutboxItem]:
    """The gateway's outbox rows, by application id (fails on a second row for one)."""
    engine = create_engine(database_url)
    try:
        async with session_factory(engine)() as session:
            rows = (await session.scalars(select(OutboxItem))).all()
    finally:
        await engine.dispose()
    by_application: dict[str, OutboxItem] = {}
    for row in rows:
        assert row.application_id not in by_application, "two outbox rows for one application"
        by_application[row.application_id] = row
    return by_application


@dataclass(frozen=True)
class AgencyBook:
    """What one agency has on record: its filings and (where it logs them) how
    many SUBMITs it received, repeats included. SQL agencies keep no attempt
    log: a repeat there is refused by the IDEM_KEY unique constraint."""

    agency: str
    kind: BackendKind
    filings: list[Filing]
    attempts: int | None


async def agency_books(catalog: Catalog, workdir: Path) -> dict[str, AgencyBook]:
    """Read every agency's own records from ``workdir`` with the simulators' own
    record classes. Call it after the simulator process has stopped."""
    books: dict[str, AgencyBook] = {}
    simulators = build_simulators(catalog, workdir, [0] * len(catalog.agencies))
    for simulator in simulators:
        kind = simulator.agency.backend.kind
        code = simulator.agency.code
        filings = await asyncio.to_thread(simulator.filings)
        attempts: int | None = None
        if isinstance(simulator, FileSimulator):
            attempts = await asyncio.to_thread(simulator.attempts)
            await simulator.stop()  # closes the register it opened
        elif kind in (BackendKind.SOAP, BackendKind.REST):
            records = AgencyRecords(simulator.workdir / "records.sqlite", code)
            try:
                attempts = records.attempts()
            finally:
                records.close()
        books[code] = AgencyBook(code, kind, filings, attempts)
    return books


def check_filed_exactly_once(
    books: Mapping[str, AgencyBook],
    submitted: Mapping[str, Planned],
    references: Mapping[str, str],
) -> Counter[str]:
    """Every application is on record once, at its own agency, under its key
    ``khaalga-<id>`` and with the reference the gateway shows; nothing else is
    on record anywhere. Returns the filings per back-end kind."""
    keys = Counter(f.idempotency_key for book in books.values() for f in book.filings)
    twice = sorted(key for key, n in keys.items() if n > 1)
    assert not twice, f"filed more than once: {twice[:10]} ({len(twice)} keys)"
    expected = {idempotency_key(app_id): app_id for app_id in submitted}
    missing = sorted(set(expected) - set(keys))
    assert not missing, f"never filed: {missing[:10]} ({len(missing)} keys)"
    extra = sorted(set(keys) - set(expected))
    assert not extra, f"filed but never submitted: {extra[:10]} ({len(extra)} keys)"
    per_kind: Counter[str] = Counter()
    for book in books.values():
        for filing in book.filings:
            app_id = expected[filing.idempotency_key]
            assert submitted[app_id].agency == book.agency, (filing.idempotency_key, book.agency)
            assert references[app_id] == filing.reference, (app_id, filing.reference)
            per_kind[book.kind.value] += 1
    return per_kind


def agency_attempts(books: Mapping[str, AgencyBook]) -> tuple[int, int]:
    """(SUBMITs received, filings) over the agencies that log attempts."""
    logged = [book for book in books.values() if book.attempts is not None]
    return (
        sum(book.attempts or 0 for book in logged),
        sum(len(book.filings) for book in logged),
    )


def repeated_attempts(books: Mapping[str, AgencyBook]) -> dict[str, int]:
    """Agencies that received more SUBMITs than they filed: agency -> surplus."""
    return {
        book.agency: (book.attempts or 0) - len(book.filings)
        for book in books.values()
        if book.attempts is not None and book.attempts != len(book.filings)
    }
