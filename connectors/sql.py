"""Connector for agencies whose legacy system is a bare SQL database.

The gateway reads and writes the agency's own tables (SQLAlchemy Core,
async), named by the catalog: ``binding.operation`` is the table or view,
binding keys and values are its columns. Tables are reflected lazily and
cached; names are matched case-insensitively because legacy databases fold
identifiers differently (PostgreSQL to lower case, Oracle-era schemas to
upper case, MariaDB keeps what was typed).

Request tables carry the reserved columns ID, IDEM_KEY, REF_NO, STS_CD,
STS_NOTE, CRT_DT, UPD_DT; the agency's review batch job owns STS_CD/STS_NOTE.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import math
from collections.abc import Coroutine, Mapping, Sequence
from dataclasses import dataclass
from decimal import Decimal
from typing import Any, TypeVar

from sqlalchemy import (
    CompoundSelect,
    Integer,
    MetaData,
    Select,
    Table,
    bindparam,
    insert,
    inspect,
    literal_column,
    select,
    union_all,
    update,
)
from sqlalchemy import exc as sa_exc
from sqlalchemy.engine import Connection, make_url
from sqlalchemy.ext.asyncio import AsyncEngine, create_async_engine
from sqlalchemy.sql.schema import Column

from connectors.base import Action, BackendRequest, BackendResponse, BatchingConnector
from connectors.config import BackendEndpoint, Timeouts
from connectors.errors import (
    BackendRejected,
    BackendTimeout,
    BackendUnavailable,
    ConnectorError,
    MappingError,
    ProtocolError,
)
from connectors.sqlite_reads import SqliteReads, SqliteStatement
from gateway.catalog.model import Agency, Service
from gateway.db.failures import classify, error_code

T = TypeVar("T")
_DEFAULT_TIMEOUTS = Timeouts()
_POOL_SIZE = 10
_POOL_RECYCLE = 1800.0  # seconds a connection is used before it is replaced
_BATCH_SHAPES = 64  # compiled batch statements kept per connector
_BATCH_KEY = "khaalga_batch_key"
RESERVED_COLUMNS = ("ID", "IDEM_KEY", "REF_NO", "STS_CD", "STS_NOTE", "CRT_DT", "UPD_DT")
STATUSES = frozenset({"DELIVERED", "IN_REVIEW", "NEEDS_INFO", "APPROVED", "REJECTED", "ISSUED"})


def reference_prefix(agency: Agency) -> str:
    return str(agency.backend.dialect.get("reference_prefix", agency.code))


def legacy_reference(prefix: str, year: int, row_id: int) -> str:
    """The agency's reference number for request row ``row_id``."""
    return f"{prefix}-{year}-{row_id:06d}"


def _utcnow() -> dt.datetime:
    # Naive UTC: portable across the three dialects' timestamp-without-zone columns.
    return dt.datetime.now(dt.UTC).replace(tzinfo=None)


def _engine_options(url: str, timeouts: Timeouts) -> dict[str, Any]:
    backend = make_url(url).get_backend_name()
    connect_args: dict[str, Any] = {}
    if backend == "sqlite":
        # sqlite3's busy timeout: how long to wait for another writer's lock. A call
        # blocked there runs in aiosqlite's thread and cannot be cancelled from the
        # event loop, so cap it at the overall limit or that limit would not hold.
        connect_args = {"timeout": min(timeouts.read, timeouts.total)}
    elif backend in ("mysql", "mariadb"):
        # Lock waits default to a day on MariaDB; whole seconds only, at least one.
        wait = max(1, math.ceil(timeouts.read))
        connect_args = {
            "connect_timeout": timeouts.connect,
            "init_command": (
                f"SET SESSION lock_wait_timeout={wait}, innodb_lock_wait_timeout={wait}"
            ),
        }
    elif backend == "postgresql":
        connect_args = {
            "timeout": timeouts.connect,
            "server_settings": {
                "lock_timeout": str(max(1, int(timeouts.read * 1000))),
                # So the server stops working once we have given up on the answer.
                "statement_timeout": str(max(1, int(timeouts.total * 1000))),
                "application_name": "khaalga",
            },
        }
    return {
        "connect_args": connect_args,
        # A fixed pool: a burst waits for a connection rather than opening one
        # it closes after (the churn cost CPU and fragmented memory; see
        # gateway/db/engine.py).
        "pool_size": _POOL_SIZE,
        "max_overflow": 0,
        "pool_timeout": timeouts.connect,
        "pool_recycle": _POOL_RECYCLE,
        # A server may have dropped a pooled connection; a file cannot, and the
        # ping would cost each call an extra round trip through aiosqlite's thread.
        "pool_pre_ping": backend != "sqlite",
        # Driver errors quote bound values (register numbers) in their text.
        "hide_parameters": True,
    }


def _fits(value: Any, expected: type) -> bool:
    if expected is bool:
        return isinstance(value, bool | int)
    if expected in (int, float, Decimal):
        return isinstance(value, int | float | Decimal)
    if expected is dt.date:
        return isinstance(value, dt.date)
    return isinstance(value, expected)


def _python_type(column: Column[Any]) -> type | None:
    try:
        return column.type.python_type
    except NotImplementedError:
        return None


@dataclass(frozen=True, slots=True)
class _LookupQuery:
    table: Table
    statement: Select[Any]
    names: list[str]
    """Back-end field names, in the order of ``columns`` and of the row."""
    columns: list[Column[Any]]
    compiled: SqliteStatement | None
    """For ``SqliteReads``, on SQLite."""

    @staticmethod
    def parameters(bound: Mapping[Column[Any], Any]) -> dict[str, Any]:
        return {f"p{i}": value for i, value in enumerate(bound.values()) if value is not None}


@dataclass(frozen=True, slots=True)
class _BatchQuery:
    """Several LOOKUPs of one service as one statement: each lookup's own
    SELECT (its LIMIT 2 included) as a derived table, tagged with its place
    in the batch, the lot joined by UNION ALL."""

    statement: CompoundSelect[Any]
    compiled: SqliteStatement | None


class SqlConnector(BatchingConnector):
    """Reads registers and files applications straight in the agency's database."""

    @classmethod
    def check_dialect(cls, agency: Agency) -> None:
        dialect = dict(agency.backend.dialect)
        unknown = set(dialect) - {"status_codes", "reference_prefix"}
        if unknown:
            raise ValueError(f"unknown SQL dialect keys {sorted(unknown)}")
        codes = dialect.get("status_codes", {})
        if not isinstance(codes, dict) or not set(map(str, codes.values())) <= STATUSES:
            raise ValueError(f"status_codes must map codes to {sorted(STATUSES)}")
        if "DELIVERED" not in codes.values():
            raise ValueError("status_codes needs a code for DELIVERED")
        if not isinstance(dialect.get("reference_prefix", agency.code), str):
            raise ValueError("reference_prefix must be text")

    def __init__(
        self, agency: Agency, endpoint: BackendEndpoint, timeouts: Timeouts = _DEFAULT_TIMEOUTS
    ) -> None:
        self._agency = agency
        self._timeouts = timeouts
        self._engine: AsyncEngine = create_async_engine(
            endpoint.url, **_engine_options(endpoint.url, timeouts)
        )
        self._services = {s.code: s for s in agency.services}
        dialect = agency.backend.dialect
        self._prefix = reference_prefix(agency)
        self._status_of = {
            str(code).strip(): str(status)
            for code, status in dict(dialect.get("status_codes", {})).items()
        }
        self._delivered_code = next(
            (code for code, status in self._status_of.items() if status == "DELIVERED"), None
        )
        self._metadata = MetaData()
        self._tables: dict[str, Table] = {}
        self._lookups: dict[tuple[str, str, tuple[tuple[str, bool], ...]], _LookupQuery] = {}
        self._batches: dict[tuple[object, ...], _BatchQuery] = {}
        self._reflecting = asyncio.Lock()
        self._closed = False
        # Half the pool at most, so filings always find a connection.
        self._reads = (
            SqliteReads(self._engine, keep=_POOL_SIZE // 2, recycle=_POOL_RECYCLE)
            if self._engine.dialect.name == "sqlite"
            else None
        )

    async def aclose(self) -> None:
        self._closed = True
        if self._reads is not None:
            await self._reads.aclose()  # before the pool goes: they are its connections
        await self._engine.dispose()

    # -- the one error boundary ------------------------------------------------------

    async def send(self, request: BackendRequest) -> BackendResponse:
        return await self._bounded(request, self._dispatch(request))

    async def lookup_many(
        self, requests: Sequence[BackendRequest]
    ) -> list[BackendResponse | ConnectorError]:
        answers: list[BackendResponse | ConnectorError | None] = [None] * len(requests)
        by_service: dict[str, list[int]] = {}
        for i, request in enumerate(requests):
            by_service.setdefault(request.service_code, []).append(i)
        # One statement per service (its table); a batch rarely spans
        # services, so they go one after the other.
        for indexes in by_service.values():
            group = [requests[i] for i in indexes]
            found = await self._bounded(group[0], self._lookup_group(group))
            for i, answer in zip(indexes, found, strict=True):
                answers[i] = answer
        return [answer for answer in answers if answer is not None]

    async def _bounded(self, request: BackendRequest, work: Coroutine[Any, Any, T]) -> T:
        """``work`` on ``request``'s behalf, its failures as connector errors."""
        if self._closed:
            work.close()
            raise BackendUnavailable(self._agency.code, "connector is closed")
        try:
            async with asyncio.timeout(self._timeouts.total):
                return await work
        except ConnectorError:
            raise
        except TimeoutError as exc:
            raise BackendTimeout(
                self._agency.code, f"{request.service_code}: no answer within the time limit"
            ) from exc
        except Exception as exc:
            mapped = self._translate(exc, request)
            if mapped is None:
                raise
            raise mapped from exc

    def _translate(self, exc: Exception, request: BackendRequest) -> ConnectorError | None:
        # Messages carry error classes and codes only: driver texts can echo row values.
        agency, code = self._agency.code, request.service_code
        if isinstance(exc, sa_exc.TimeoutError):
            return BackendTimeout(agency, f"{code}: no database connection free in time")
        if isinstance(exc, sa_exc.DBAPIError):
            failure = classify(exc)
            what = error_code(exc)
            match failure:
                case "unavailable" | "unknown":
                    return BackendUnavailable(agency, f"{code}: database unavailable ({what})")
                case "timeout":
                    return BackendTimeout(agency, f"{code}: database statement timed out")
                case "missing":
                    # The schema changed under us: forget it so the next call reflects anew.
                    self._tables.pop(request.operation.casefold(), None)
                    self._lookups.clear()
                    self._batches.clear()
                    return MappingError(
                        agency,
                        code,
                        "operation",
                        f"table {request.operation} or one of its columns no longer exists",
                    )
                case "data":
                    return ProtocolError(agency, f"{code}: database refused a value ({what})")
                case "integrity" | "rejected":
                    return BackendRejected(agency, f"{code}: database refused it ({what})")
        if isinstance(exc, OSError):
            return BackendUnavailable(agency, f"{code}: cannot reach the database")
        if isinstance(exc, ValueError | TypeError | ArithmeticError):
            # Raised while SQLAlchemy converts a stored value, e.g. a date column holding junk.
            return ProtocolError(agency, f"{code}: unparseable value in the agency's record")
        if isinstance(exc, sa_exc.StatementError | sa_exc.ResourceClosedError):
            return ProtocolError(agency, f"{code}: unexpected database answer")
        return None

    # -- actions ---------------------------------------------------------------------

    async def _dispatch(self, request: BackendRequest) -> BackendResponse:
        service = self._services.get(request.service_code)
        if service is None:
            raise MappingError(
                self._agency.code, request.service_code, "code", "not a service of this agency"
            )
        match request.action:
            case Action.LOOKUP:
                return await self._lookup(service, request)
            case Action.SUBMIT:
                return await self._submit(service, request)
            case Action.STATUS:
                return await self._status(service, request)

    async def _lookup(self, service: Service, request: BackendRequest) -> BackendResponse:
        table = await self._table(service, request.operation)
        bound = self._bound(table, service, request.payload)
        query = self._lookup_query(table, service, bound)
        parameters = query.parameters(bound)
        rows: Sequence[Sequence[Any]]
        if self._reads is not None and query.compiled is not None:
            rows = await self._reads.fetch(query.compiled, parameters)
        else:
            async with self._engine.connect() as conn:
                rows = (await conn.execute(query.statement, parameters)).all()
        if not rows:
            return BackendResponse(status="NOT_FOUND")
        # Two rows for one key means the register is corrupt, not that either is right.
        if len(rows) > 1:
            raise ProtocolError(
                self._agency.code, f"{service.code}: the register holds several records for one key"
            )
        data = {
            name: self._raw(service, col, value)
            for name, col, value in zip(query.names, query.columns, rows[0], strict=True)
        }
        return BackendResponse(data=data)

    def _lookup_query(
        self, table: Table, service: Service, bound: Mapping[Column[Any], Any]
    ) -> _LookupQuery:
        """The service's SELECT, built once per table and set of null criteria:
        building and hashing a fresh one cost as much CPU as running it."""
        shape = tuple((column.name, value is None) for column, value in bound.items())
        key = (service.code, table.name, shape)
        query = self._lookups.get(key)
        if query is not None and query.table is table:
            return query
        criteria = [
            column.is_(None) if value is None else column == bindparam(f"p{i}")
            for i, (column, value) in enumerate(bound.items())
        ]
        names = list(dict.fromkeys(service.binding.response.values()))
        result_of = {column: field for field, column in service.binding.response.items()}
        columns = [self._column(table, service, result_of[name], name) for name in names]
        statement = select(*columns).where(*criteria).limit(2)
        query = _LookupQuery(
            table=table,
            statement=statement,
            names=names,
            columns=columns,
            compiled=(
                SqliteStatement.compile(statement, self._engine.dialect) if self._reads else None
            ),
        )
        self._lookups[key] = query
        return query

    async def _lookup_group(
        self, requests: Sequence[BackendRequest]
    ) -> list[BackendResponse | ConnectorError]:
        """Lookups of one service: what does not fit its columns fails
        alone, the rest run as one statement."""
        first = requests[0]
        service = self._services.get(first.service_code)
        if service is None:
            raise MappingError(
                self._agency.code, first.service_code, "code", "not a service of this agency"
            )
        table = await self._table(service, first.operation)
        answers: list[BackendResponse | ConnectorError] = []
        bounds: list[dict[Column[Any], Any]] = []
        for request in requests:
            try:
                bounds.append(self._bound(table, service, request.payload))
            except MappingError as exc:
                answers.append(exc)
            else:
                answers.append(BackendResponse(status="NOT_FOUND"))  # until its record is found
        if not bounds:
            return answers
        query = self._batch_query(table, service, bounds)
        parameters = {
            f"b{j}_{name}": value
            for j, bound in enumerate(bounds)
            for name, value in _LookupQuery.parameters(bound).items()
        }
        rows: Sequence[Sequence[Any]]
        compiled = query.compiled
        if self._reads is not None and compiled is not None:
            rows = await self._reads.fetch_raw(compiled, parameters)
        else:
            compiled = None  # the engine has processed them
            async with self._engine.connect() as conn:
                rows = (await conn.execute(query.statement, parameters)).all()
        found: dict[int, list[Sequence[Any]]] = {}
        for row in rows:
            found.setdefault(int(row[0]), []).append(row)
        places = [i for i, answer in enumerate(answers) if not isinstance(answer, ConnectorError)]
        lookup = self._lookup_query(table, service, bounds[0])
        for j, place in enumerate(places):
            records = found.get(j, [])
            if len(records) > 1:
                answers[place] = ProtocolError(
                    self._agency.code,
                    f"{service.code}: the register holds several records for one key",
                )
            elif records:
                answers[place] = self._record(service, lookup, records[0], compiled)
        return answers

    def _record(
        self,
        service: Service,
        lookup: _LookupQuery,
        row: Sequence[Any],
        compiled: SqliteStatement | None,
    ) -> BackendResponse | ProtocolError:
        # The errors a single lookup would raise on this row, kept to its own lookup.
        try:
            values = compiled.row(row) if compiled is not None else row
            return BackendResponse(data={
                name: self._raw(service, column, value)
                for name, column, value in zip(
                    lookup.names, lookup.columns, values[1:], strict=True
                )
            })  # fmt: skip
        except ProtocolError as exc:
            return exc
        except (ValueError, TypeError, ArithmeticError):
            return ProtocolError(
                self._agency.code, f"{service.code}: unparseable value in the agency's record"
            )

    def _batch_query(
        self, table: Table, service: Service, bounds: Sequence[Mapping[Column[Any], Any]]
    ) -> _BatchQuery:
        """The batch's statement, built once per service and sequence of
        lookup shapes (which criteria are null), like ``_lookup_query``."""
        shapes = tuple(
            tuple((column.name, value is None) for column, value in bound.items())
            for bound in bounds
        )
        key = (service.code, table.name, shapes)
        query = self._batches.get(key)
        if query is not None:
            return query
        lookup = self._lookup_query(table, service, bounds[0])
        branches = []
        for j, bound in enumerate(bounds):
            criteria = [
                column.is_(None) if value is None else column == bindparam(f"b{j}_p{i}")
                for i, (column, value) in enumerate(bound.items())
            ]
            one = select(*lookup.columns).where(*criteria).limit(2).subquery(f"k{j}")
            branches.append(select(literal_column(str(j), Integer).label(_BATCH_KEY), *one.c))
        statement = union_all(*branches)
        query = _BatchQuery(
            statement=statement,
            compiled=(
                SqliteStatement.compile(statement, self._engine.dialect) if self._reads else None
            ),
        )
        if len(self._batches) >= _BATCH_SHAPES:
            del self._batches[next(iter(self._batches))]  # the oldest
        self._batches[key] = query
        return query

    async def _submit(self, service: Service, request: BackendRequest) -> BackendResponse:
        key = request.idempotency_key
        if not key:
            raise MappingError(
                self._agency.code, service.code, "idempotency_key", "a SUBMIT needs one"
            )
        table = await self._table(service, request.operation)
        r = self._reserved(table, service)
        now = _utcnow()
        values: dict[Column[Any], Any] = dict(self._bound(table, service, request.payload))
        values |= {r["IDEM_KEY"]: key, r["STS_CD"]: self._delivered_code, r["CRT_DT"]: now}
        values[r["UPD_DT"]] = now
        try:
            async with self._engine.begin() as conn:
                inserted = await conn.execute(insert(table).values(values))
                row_id = inserted.inserted_primary_key[0] if inserted.inserted_primary_key else None
                if row_id is None:
                    raise ProtocolError(
                        self._agency.code, f"{service.code}: the database returned no row ID"
                    )
                # REF_NO is set by us, from the new ID, in the same transaction rather than
                # by a trigger: MariaDB BEFORE INSERT triggers cannot see the AUTO_INCREMENT
                # ID and AFTER triggers cannot update their own table, so a trigger would
                # differ per dialect; this also mirrors the agency's old desktop client,
                # which numbered documents itself. The batch job numbers stray rows.
                reference = legacy_reference(self._prefix, now.year, int(row_id))
                await conn.execute(
                    update(table).where(r["ID"] == row_id).values({r["REF_NO"]: reference})
                )
        except sa_exc.IntegrityError as exc:
            # Whichever constraint fired, a row with our key means this is a repeat
            # (possibly a concurrent one that won the race): answer with its reference.
            existing = await self._reference_for_key(table, service, key)
            if existing is None:
                raise BackendRejected(
                    self._agency.code, f"{service.code}: the database refused the application"
                ) from exc
            reference = existing
        return BackendResponse(reference=reference, status="DELIVERED")

    async def _reference_for_key(self, table: Table, service: Service, key: str) -> str | None:
        r = self._reserved(table, service)
        async with self._engine.begin() as conn:
            row = (
                await conn.execute(
                    select(r["ID"], r["REF_NO"], r["CRT_DT"]).where(r["IDEM_KEY"] == key)
                )
            ).first()
            if row is None:
                return None
            if row[1]:
                return str(row[1])
            # Filed by some other client and not numbered yet: number it now.
            year = row[2].year if isinstance(row[2], dt.datetime) else _utcnow().year
            reference = legacy_reference(self._prefix, year, int(row[0]))
            await conn.execute(
                update(table)
                .where(r["ID"] == row[0], r["REF_NO"].is_(None))
                .values({r["REF_NO"]: reference})
            )
        return reference

    async def _status(self, service: Service, request: BackendRequest) -> BackendResponse:
        if not request.reference:
            raise BackendRejected(self._agency.code, f"{service.code}: STATUS needs a reference")
        table = await self._table(service, request.operation)
        r = self._reserved(table, service)
        async with self._engine.connect() as conn:
            row = (
                await conn.execute(
                    select(r["STS_CD"], r["STS_NOTE"]).where(r["REF_NO"] == request.reference)
                )
            ).first()
        if row is None:
            raise BackendRejected(self._agency.code, f"{service.code}: unknown reference")
        code, note = row
        if code is None:
            status: str | None = "DELIVERED"  # filed, the batch job has not picked it up yet
        else:
            status = self._status_of.get(str(code).strip())
        if status is None:
            raise ProtocolError(
                self._agency.code, f"{service.code}: unknown status code {str(code)[:8]!r}"
            )
        if status not in STATUSES:
            raise MappingError(
                self._agency.code,
                service.code,
                "status_codes",
                f"dialect maps a code to {status!r}, not an application status",
            )
        return BackendResponse(
            reference=request.reference, status=status, note=None if note is None else str(note)
        )

    # -- schema ------------------------------------------------------------------------

    async def _table(self, service: Service, operation: str) -> Table:
        cache_key = operation.casefold()
        table = self._tables.get(cache_key)
        if table is not None:
            return table
        async with self._reflecting:
            table = self._tables.get(cache_key)
            if table is None:
                async with self._engine.connect() as conn:
                    table = await conn.run_sync(self._reflect, operation)
                if table is None:
                    raise MappingError(
                        self._agency.code,
                        service.code,
                        "operation",
                        f"no table or view {operation} in the agency's database",
                    )
                self._tables[cache_key] = table
        return table

    def _reflect(self, conn: Connection, operation: str) -> Table | None:
        inspector = inspect(conn)
        names = [*inspector.get_table_names(), *inspector.get_view_names()]
        matches = [n for n in names if n.casefold() == operation.casefold()]
        if not matches:
            return None
        actual = operation if operation in matches else matches[0]
        self._metadata.reflect(conn, only=[actual], views=True, extend_existing=True)
        return self._metadata.tables[actual]

    def _column(self, table: Table, service: Service, field: str, name: str) -> Column[Any]:
        for column in table.columns:
            if column.name.casefold() == name.casefold():
                return column
        raise MappingError(
            self._agency.code, service.code, field, f"no column {name} in {table.name}"
        )

    def _reserved(self, table: Table, service: Service) -> dict[str, Column[Any]]:
        return {name: self._column(table, service, name, name) for name in RESERVED_COLUMNS}

    def _bound(
        self, table: Table, service: Service, payload: Mapping[str, Any]
    ) -> dict[Column[Any], Any]:
        """Payload keyed by reflected column, each value checked against the column type."""
        bound: dict[Column[Any], Any] = {}
        for name, value in payload.items():
            field = service.binding.request.get(name, name)
            column = self._column(table, service, field, name)
            expected = _python_type(column)
            if value is not None and expected is not None and not _fits(value, expected):
                raise MappingError(
                    self._agency.code,
                    service.code,
                    field,
                    f"a {type(value).__name__} does not fit column {name} ({expected.__name__})",
                )
            bound[column] = value
        return bound

    def _raw(self, service: Service, column: Column[Any], value: Any) -> Any:
        """A stored value as the mapping layer expects it, or ProtocolError if it is junk."""
        if value is None:
            return None
        if isinstance(value, Decimal):
            value = int(value) if value == value.to_integral_value() else float(value)
        expected = _python_type(column)
        if expected is not None and not _fits(value, expected):
            raise ProtocolError(
                self._agency.code,
                f"{service.code}: column {column.name} holds a value that is not "
                f"a {expected.__name__}",
            )
        return value
