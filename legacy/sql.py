"""The SQL agencies' own legacy database (PROP, HLTH, ARCH), simulated.

The agency's "system" is nothing but its database plus a nightly-style review
batch job, which is what these agencies really run: the gateway talks to the
tables directly. On the embedded default the database is a SQLite file under
``workdir``; tests also run it on MariaDB and PostgreSQL through
``database_url``.

Schema, built from the catalog bindings (names exactly as the catalog spells
them, uppercase):

* per APPLICATION operation a request table with the reserved columns ID,
  IDEM_KEY (unique: that is how the agency dedupes), REF_NO, STS_CD,
  STS_NOTE, CRT_DT, UPD_DT plus the binding's request columns;
* per LOOKUP operation a register table keyed by the request columns, holding
  the response columns, seeded for the made-up ``samples.CITIZENS``.

Faults are applied inside the database, never by sleeping in Python, so the
connector meets them the way it would meet a real troubled legacy DB:

* ``down``: a session holds an exclusive lock on the agency's tables
  (SQLite ``BEGIN EXCLUSIVE``, MariaDB ``LOCK TABLES ... WRITE``, PostgreSQL
  ``LOCK TABLE ... IN ACCESS EXCLUSIVE MODE``); clients wait for their lock
  timeout and get "database is locked"/lock-wait errors. The batch job stops.
* ``delay``: the batch job holds that same lock for ``delay`` seconds on each
  pass, then lets go for one tick (20-250 ms), like a slow job hogging the
  tables. A request arriving while the lock is held waits up to ``delay``
  seconds (or fails as locked if its own lock timeout is shorter); one that
  arrives in the gap passes at once. So this is "up to delay", not a fixed
  delay on every answer: nothing outside the client can slow a single SQLite
  statement down, and the same mechanism is used on every dialect.
* ``garbage``: corrupt records. Every request row's STS_CD becomes ``??``
  (no such agency code) and every register row gets a corrupted twin with the
  same key, holding ``??`` wherever the column can store text (on SQLite that
  includes date and number columns). Resetting the fault restores both.

Faults are polled by the batch job every tick; ``apply_faults()`` applies
them at once for tests that need to know the lock is held.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import logging
import threading
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from sqlalchemy import (
    BigInteger,
    Boolean,
    Column,
    Date,
    DateTime,
    Double,
    Integer,
    MetaData,
    String,
    Table,
    and_,
    bindparam,
    delete,
    insert,
    literal,
    or_,
    select,
    update,
)
from sqlalchemy.dialects import mysql
from sqlalchemy.engine import make_url
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine, create_async_engine
from sqlalchemy.pool import NullPool
from sqlalchemy.sql.expression import BindParameter
from sqlalchemy.types import TypeEngine

from connectors.config import BackendEndpoint
from connectors.sql import RESERVED_COLUMNS, legacy_reference, reference_prefix
from gateway.catalog.model import Agency, FieldType, FormField, Service, ServiceKind
from legacy.base import Simulator
from legacy.fakedata import fake_value
from legacy.records import Filing
from legacy.review import review_state
from legacy.samples import CITIZENS, sample_form

log = logging.getLogger(__name__)

GARBAGE = "??"
_TERMINAL = ("REJECTED", "ISSUED")
_TEXT_TYPES = frozenset(
    {
        FieldType.TEXT,
        FieldType.ENUM,
        FieldType.REGISTER_NUMBER,
        FieldType.COMPANY_NUMBER,
        FieldType.PHONE,
        FieldType.EMAIL,
        FieldType.PARCEL_NUMBER,
        FieldType.PLATE_NUMBER,
    }
)
# The simulator's own sessions must never hang on a lock forever.
_OWN_LOCK_TIMEOUT = 5


def _timestamp() -> TypeEngine[Any]:
    # Review steps are fractions of a second in tests: keep microseconds on MariaDB.
    return DateTime().with_variant(mysql.DATETIME(fsp=6), "mysql", "mariadb")


def column_type(field_type: FieldType, max_length: int | None = None) -> TypeEngine[Any]:
    """The legacy column type for a catalog field type."""
    match field_type:
        case FieldType.DATE:
            return Date()
        case FieldType.NUMBER:
            return Double()
        case FieldType.AMOUNT:
            return BigInteger()
        case FieldType.BOOLEAN:
            return Boolean(create_constraint=False)
        case _:
            return String(max(max_length or 0, 200))


def column_value(field_type: FieldType, value: Any) -> Any:
    """A sample form value as the column stores it (forms carry dates as ISO text)."""
    if value is None:
        return None
    if field_type is FieldType.DATE and isinstance(value, str):
        return dt.date.fromisoformat(value)
    if field_type in (FieldType.NUMBER, FieldType.AMOUNT) and isinstance(value, str):
        return float(value)
    return value


def form_description(fields: Sequence[FormField]) -> list[dict[str, Any]]:
    """The public form description ``samples.sample_form`` works on."""
    return [
        {
            "name": f.name,
            "type": f.type.value,
            "min": f.min,
            "max": f.max,
            "max_length": f.max_length,
            "options": [{"value": o.value} for o in f.options],
            "pattern": f.pattern,
        }
        for f in fields
    ]


def lookup_seed(operation: str, key: Mapping[str, Any], column: str) -> str:
    """The ``fake_value`` seed of one register value: derived from the lookup key."""
    parts = "|".join(f"{name}={key[name]}" for name in sorted(key))
    return f"{operation}|{parts}|{column}"


def lookup_key(service: Service, citizen: str) -> dict[str, Any]:
    """The register key (back-end column -> value) a citizen's sample form looks up."""
    form = sample_form(form_description(service.form), citizen)
    types = {f.name: f.type for f in service.form}
    return {
        column: column_value(types[form_field], form[form_field])
        for column, form_field in service.binding.request.items()
    }


def lookup_record(service: Service, key: Mapping[str, Any]) -> dict[str, Any]:
    """The register row the agency holds for ``key``: key columns plus fake values."""
    row = dict(key)
    types = {f.name: f.type for f in service.result}
    for result_field, column in service.binding.response.items():
        if column not in row:
            row[column] = fake_value(
                types[result_field], lookup_seed(service.binding.operation, key, column)
            )
    return row


def legacy_metadata(agency: Agency) -> MetaData:
    """The agency's legacy schema, derived from its catalog bindings."""
    metadata = MetaData()
    columns: dict[str, dict[str, TypeEngine[Any]]] = {}
    requests: set[str] = set()
    for service in agency.services:
        table = columns.setdefault(service.binding.operation, {})
        form = {f.name: f for f in service.form}
        for column, form_field in service.binding.request.items():
            spec = form[form_field]
            table.setdefault(column, column_type(spec.type, spec.max_length))
        results = {f.name: f for f in service.result}
        for result_field, column in service.binding.response.items():
            table.setdefault(column, column_type(results[result_field].type))
        if service.kind is ServiceKind.APPLICATION:
            requests.add(service.binding.operation)
    for name, table_columns in columns.items():
        own: list[Column[Any]] = [
            Column(column, type_, nullable=True)
            for column, type_ in table_columns.items()
            if column not in RESERVED_COLUMNS
        ]
        if name in requests:
            own = [
                Column("ID", Integer, primary_key=True, autoincrement=True),
                Column("IDEM_KEY", String(128), nullable=False, unique=True),
                Column("REF_NO", String(40), nullable=True, unique=True),
                Column("STS_CD", String(8), nullable=True),
                Column("STS_NOTE", String(500), nullable=True),
                Column("CRT_DT", _timestamp(), nullable=False),
                Column("UPD_DT", _timestamp(), nullable=True),
                *own,
            ]
        Table(name, metadata, *own, mysql_engine="InnoDB", mysql_charset="utf8mb4")
    return metadata


def _utcnow() -> dt.datetime:
    # Naive UTC, the same clock the connector stamps CRT_DT with.
    return dt.datetime.now(dt.UTC).replace(tzinfo=None)


def _engine_for(url: str, **kwargs: Any) -> AsyncEngine:
    backend = make_url(url).get_backend_name()
    connect_args: dict[str, Any] = {}
    if backend == "sqlite":
        connect_args = {"timeout": _OWN_LOCK_TIMEOUT}
    elif backend in ("mysql", "mariadb"):
        connect_args = {"init_command": f"SET SESSION lock_wait_timeout={_OWN_LOCK_TIMEOUT}"}
    elif backend == "postgresql":
        connect_args = {"server_settings": {"lock_timeout": f"{_OWN_LOCK_TIMEOUT}s"}}
    return create_async_engine(url, connect_args=connect_args, **kwargs)


class SqlSimulator(Simulator):
    """An SQL agency: its database, seeded registers and review batch job."""

    def __init__(
        self,
        agency: Agency,
        workdir: Path,
        port: int,
        review_seconds: float = 3.0,
        *,
        database_url: str | None = None,
    ) -> None:
        super().__init__(agency, workdir, port, review_seconds)
        self.database_url = database_url or self.endpoint_for(agency, workdir, port).url
        self.metadata = legacy_metadata(agency)
        dialect = agency.backend.dialect
        self._prefix = reference_prefix(agency)
        self._code_of: dict[str, str] = {}
        for code, status in dict(dialect.get("status_codes", {})).items():
            self._code_of.setdefault(str(status), str(code))
        self._terminal_codes = [self._code_of[s] for s in _TERMINAL if s in self._code_of]
        self._request_tables = [
            self.metadata.tables[s.binding.operation]
            for s in agency.services
            if s.kind is ServiceKind.APPLICATION
        ]
        self._engine: AsyncEngine | None = None
        self._task: asyncio.Task[None] | None = None
        self._guard = asyncio.Lock()
        self._lock_conn: AsyncConnection | None = None
        self._garbage_applied: bool | None = None

    @classmethod
    def endpoint_for(cls, agency: Agency, workdir: Path, port: int) -> BackendEndpoint:
        path = workdir.resolve() / f"{agency.code.lower()}.sqlite"
        return BackendEndpoint(url=f"sqlite+aiosqlite:///{path}")

    def endpoint(self) -> BackendEndpoint:
        return BackendEndpoint(url=self.database_url)

    @property
    def _tick(self) -> float:
        # Fine enough to show every review step, coarse enough not to hammer the DB.
        return min(0.25, max(0.02, self.review_seconds / 5))

    async def start(self) -> None:
        if self._engine is not None:
            return
        if make_url(self.database_url).get_backend_name() == "sqlite":
            self.workdir.mkdir(parents=True, exist_ok=True)
        self._engine = _engine_for(self.database_url)
        async with self._engine.begin() as conn:
            await conn.run_sync(self.metadata.create_all)
        await self.apply_faults()
        self._task = asyncio.create_task(self._run(), name=f"{self.agency.code} review batch")

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None
        async with self._guard:
            await self._release_lock()
        if self._engine is not None:
            await self._engine.dispose()
            self._engine = None
        self._garbage_applied = None

    async def apply_faults(self) -> None:
        """Bring the database in line with ``self.faults`` now."""
        async with self._guard:
            if self.faults.down:
                await self._acquire_lock()
                return
            await self._release_lock()
            if self._garbage_applied != self.faults.garbage:
                await self._seed(garbage=self.faults.garbage)
                await self._review_pass(everything=True)
                self._garbage_applied = self.faults.garbage

    async def _run(self) -> None:
        while True:
            try:
                await self.apply_faults()
                if not self.faults.down and self.faults.delay > 0:
                    async with self._guard:
                        await self._acquire_lock()
                        await asyncio.sleep(self.faults.delay)
                        await self._release_lock()
                if not self.faults.down:
                    async with self._guard:
                        await self._review_pass()
            except Exception as exc:
                # A real batch job logs and runs again next time; no row data in the log.
                log.warning("%s review batch failed: %s", self.agency.code, type(exc).__name__)
            await asyncio.sleep(self._tick)

    def _require_engine(self) -> AsyncEngine:
        if self._engine is None:
            raise RuntimeError("simulator not started")
        return self._engine

    async def _acquire_lock(self) -> None:
        if self._lock_conn is not None:
            return
        engine = self._require_engine()
        conn = await engine.connect()
        try:
            quote = conn.dialect.identifier_preparer.format_table
            tables = list(self.metadata.sorted_tables)
            match conn.dialect.name:
                case "sqlite":
                    await conn.exec_driver_sql("BEGIN EXCLUSIVE")
                case "mysql" | "mariadb":
                    names = ", ".join(f"{quote(t)} WRITE" for t in tables)
                    await conn.exec_driver_sql(f"LOCK TABLES {names}")
                case "postgresql":
                    names = ", ".join(quote(t) for t in tables)
                    await conn.exec_driver_sql(f"LOCK TABLE {names} IN ACCESS EXCLUSIVE MODE")
                case other:
                    raise NotImplementedError(f"no table lock for dialect {other}")
        except BaseException:
            await conn.close()
            raise
        self._lock_conn = conn

    async def _release_lock(self) -> None:
        conn, self._lock_conn = self._lock_conn, None
        if conn is None:
            return
        try:
            if conn.dialect.name in ("mysql", "mariadb"):
                await conn.exec_driver_sql("UNLOCK TABLES")
            await conn.rollback()
        finally:
            await conn.close()

    async def _seed(self, *, garbage: bool) -> None:
        """(Re)write the register rows for every sample citizen, corrupted or clean."""
        engine = self._require_engine()
        text_capable_everywhere = engine.dialect.name == "sqlite"
        async with engine.begin() as conn:
            for service in self.agency.services:
                if service.kind is not ServiceKind.LOOKUP:
                    continue
                table = self.metadata.tables[service.binding.operation]
                for citizen in CITIZENS:
                    key = lookup_key(service, citizen)
                    match = and_(*(table.c[name] == value for name, value in key.items()))
                    await conn.execute(delete(table).where(match))
                    record = lookup_record(service, key)
                    await conn.execute(insert(table).values(record))
                    if garbage:
                        twin: dict[str, Any] = {}
                        for name, value in record.items():
                            if name in key:
                                twin[name] = value
                            elif text_capable_everywhere or isinstance(table.c[name].type, String):
                                twin[name] = literal(GARBAGE, String())
                            else:
                                twin[name] = value
                        await conn.execute(insert(table).values(twin))

    async def _review_pass(self, *, everything: bool = False) -> None:
        """One run of the batch job: number new filings and move reviews along."""
        engine = self._require_engine()
        now = _utcnow()
        garbage = self.faults.garbage
        async with engine.begin() as conn:
            for table in self._request_tables:
                c = table.c
                query = select(c.ID, c.IDEM_KEY, c.REF_NO, c.STS_CD, c.STS_NOTE, c.CRT_DT)
                if not everything and self._terminal_codes:
                    query = query.where(
                        or_(
                            c.STS_CD.is_(None),
                            c.STS_CD.not_in(self._terminal_codes),
                            c.REF_NO.is_(None),
                        )
                    )
                changes: list[dict[str, Any]] = []
                for row in (await conn.execute(query)).all():
                    filed = row.CRT_DT or now
                    status, note = review_state(
                        row.IDEM_KEY, (now - filed).total_seconds(), self.review_seconds
                    )
                    code = GARBAGE if garbage else self._code_of.get(status, row.STS_CD)
                    reference = row.REF_NO or legacy_reference(self._prefix, filed.year, row.ID)
                    if (code, note, reference, row.CRT_DT) != (
                        row.STS_CD,
                        row.STS_NOTE,
                        row.REF_NO,
                        filed,
                    ):
                        changes.append(
                            {
                                "b_id": row.ID,
                                "b_cd": code,
                                "b_note": note,
                                "b_ref": reference,
                                "b_crt": filed,
                                "b_upd": now,
                            }
                        )
                if changes:
                    row_id: BindParameter[int] = bindparam("b_id")
                    await conn.execute(
                        update(table)
                        .where(row_id == c.ID)
                        .values(
                            STS_CD=bindparam("b_cd"),
                            STS_NOTE=bindparam("b_note"),
                            REF_NO=bindparam("b_ref"),
                            CRT_DT=bindparam("b_crt"),
                            UPD_DT=bindparam("b_upd"),
                        ),
                        changes,
                    )

    def filings(self) -> list[Filing]:
        # The contract makes this synchronous while the simulator runs on the caller's
        # event loop, so read on a private loop in a short-lived thread.
        box: list[list[Filing]] = []
        errors: list[BaseException] = []

        def work() -> None:
            try:
                box.append(asyncio.run(self._read_filings()))
            except BaseException as exc:
                errors.append(exc)

        thread = threading.Thread(target=work, name=f"{self.agency.code} filings")
        thread.start()
        thread.join()
        if errors:
            raise errors[0]
        return box[0]

    async def _read_filings(self) -> list[Filing]:
        engine = _engine_for(self.database_url, poolclass=NullPool)
        found: list[Filing] = []
        try:
            async with engine.connect() as conn:
                for table in self._request_tables:
                    own = [c for c in table.columns if c.name not in RESERVED_COLUMNS]
                    c = table.c
                    rows = await conn.execute(
                        select(c.REF_NO, c.IDEM_KEY, c.CRT_DT, *own).order_by(c.ID)
                    )
                    for row in rows.all():
                        filed = row.CRT_DT.replace(tzinfo=dt.UTC).timestamp()
                        payload = {col.name: row._mapping[col.name] for col in own}
                        found.append(
                            Filing(row.REF_NO or "", row.IDEM_KEY, table.name, payload, filed)
                        )
        finally:
            await engine.dispose()
        return sorted(found, key=lambda f: f.filed_at)
