"""A simulated agency back end that speaks REST/JSON in the agency's own dialect.

Serves, under ``http://127.0.0.1:<port>/api``:

- ``GET /api/<lookup operation>?<field>=<value>...`` -> ``{<envelope>: {field: value}}``;
  dates in the dialect's ``date_format``, AMOUNT values as strings when
  ``amounts_as_strings``. A REGISTER_NUMBER whose digits are all zero (e.g.
  ``NO_RECORD_REGISTER``) has no record: 404 ``no_record``, so NOT_FOUND can be tested.
- ``POST /api/<application operation>`` with a JSON body and ``Idempotency-Key`` ->
  201 ``{<envelope>: {"lavlakh_dugaar": ref, "tuluv": "DELIVERED"}}``; the same key
  again -> 200 with the same reference, filed once.
- ``GET /api/applications/<ref>/events`` -> the status history, oldest first, paged
  by ``?page=N&size=M`` or ``?cursor=...&size=M`` per the dialect (default size 2).

Requests are checked the way a strict agency would: wrong API key -> 401, a date or
amount not in the dialect's format -> 400, so a connector that ignores the dialect
fails loudly. Errors are ``{"error": {"code", "message"}}`` outside the envelope and
name fields, never values. Access logging is off: query strings carry register numbers.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import contextlib
import datetime as dt
import hmac
import math
import socket
import time
from collections.abc import Awaitable, Callable, Generator, Mapping
from decimal import Decimal, InvalidOperation
from pathlib import Path
from typing import Any

import orjson
import uvicorn
from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from connectors.config import BackendEndpoint
from connectors.rest import RestDialect
from gateway.catalog.model import Agency, FieldType, FormField, Service, ServiceKind
from legacy.base import Simulator
from legacy.fakedata import fake_value
from legacy.records import AgencyRecords, Filing
from legacy.review import review_state

NO_RECORD_REGISTER = "УБ00000000"
PAGE_SIZE = 2
_MAX_PAGE_SIZE = 100
_FINAL_STEP = 3  # review_state has nothing new to say after step 3
_MAX_KEY_LENGTH = 200

Handler = Callable[[Request], Awaitable[Response]]


class _BadRequest(Exception):
    def __init__(self, code: str, message: str, status: int = 400) -> None:
        super().__init__(message)
        self.code = code
        self.message = message
        self.status = status


def _json(status: int, body: Any) -> Response:
    return Response(orjson.dumps(body), status_code=status, media_type="application/json")


def _error(status: int, code: str, message: str) -> Response:
    return _json(status, {"error": {"code": code, "message": message}})


class _EmbeddedServer(uvicorn.Server):
    @contextlib.contextmanager
    def capture_signals(self) -> Generator[None, None, None]:
        # The host process owns SIGINT/SIGTERM; several simulators share one process and
        # each restoring "its" saved handlers on stop would clobber the others.
        yield


class RestSimulator(Simulator):
    def __init__(
        self, agency: Agency, workdir: Path, port: int, review_seconds: float = 3.0
    ) -> None:
        super().__init__(agency, workdir, port, review_seconds)
        self.dialect = RestDialect.of(agency)
        self._api_key = _api_key(agency).encode()
        self._lookups: dict[str, Service] = {}
        self._applications: dict[str, Service] = {}
        for service in agency.services:
            table = self._lookups if service.kind is ServiceKind.LOOKUP else self._applications
            table[service.binding.operation] = service
        self._records: AgencyRecords | None = None
        self._filed: dict[str, tuple[str, float]] = {}  # reference -> (key, filed_at)
        self._server: uvicorn.Server | None = None
        self._task: asyncio.Task[None] | None = None
        self.app = Starlette(
            routes=[
                Route("/api/applications/{reference}/events", self._route_events, methods=["GET"]),
                Route("/api/{operation}", self._route_operation, methods=["GET", "POST"]),
            ],
            exception_handlers={HTTPException: self._http_error},
        )

    # -- Simulator -------------------------------------------------------------------------------

    @classmethod
    def endpoint_for(cls, agency: Agency, workdir: Path, port: int) -> BackendEndpoint:
        return BackendEndpoint(url=f"http://127.0.0.1:{port}/api", api_key=_api_key(agency))

    async def start(self) -> None:
        if self._task is not None:
            raise RuntimeError(f"{self.agency.code} REST simulator is already running")
        # Binding here (not inside uvicorn) turns "port in use" into an OSError for the
        # caller instead of uvicorn's sys.exit inside a task.
        # IPPROTO_TCP named, not left 0: asyncio turns Nagle off (TCP_NODELAY)
        # only on sockets whose proto says TCP, and with Nagle on, every answer
        # on a kept-alive connection waited ~40 ms for the client's delayed ACK.
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM, socket.IPPROTO_TCP)
        try:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            sock.bind(("127.0.0.1", self.port))
        except OSError:
            sock.close()
            raise
        self.port = sock.getsockname()[1]  # port 0 means "any free port"
        self._records = AgencyRecords(
            self.workdir / "records.sqlite", self.agency.code, self.review_seconds
        )
        config = uvicorn.Config(
            self.app,
            lifespan="off",
            ws="none",
            log_config=None,
            access_log=False,
            timeout_graceful_shutdown=1,
        )
        server = _EmbeddedServer(config)
        task = asyncio.create_task(server.serve(sockets=[sock]))
        self._server, self._task = server, task
        while not server.started:
            if task.done():
                await self.stop()
                raise RuntimeError(f"{self.agency.code} REST simulator did not start")
            await asyncio.sleep(0.01)

    async def stop(self) -> None:
        server, task, records = self._server, self._task, self._records
        self._server = self._task = None
        self._records = None
        try:
            if server is not None and task is not None:
                server.should_exit = True
                await task
        finally:
            if records is not None:
                records.close()

    def filings(self) -> list[Filing]:
        if self._records is not None:
            return self._records.filings()
        records = AgencyRecords(self.workdir / "records.sqlite", self.agency.code)
        try:
            return records.filings()
        finally:
            records.close()

    # -- request pipeline ------------------------------------------------------------------------

    async def _route_operation(self, request: Request) -> Response:
        return await self._guard(request, self._operation)

    async def _route_events(self, request: Request) -> Response:
        return await self._guard(request, self._events)

    async def _http_error(self, request: Request, exc: Exception) -> Response:
        status = exc.status_code if isinstance(exc, HTTPException) else 500
        if status == 404:
            return _error(404, "unknown_operation", "no such resource")
        return _error(status, "http_error", "request not accepted")

    async def _guard(self, request: Request, handler: Handler) -> Response:
        """Faults first (they model the agency's infrastructure), then the API key."""
        faults = self.faults
        if faults.delay > 0:
            await asyncio.sleep(faults.delay)
        if faults.down:
            return _error(503, "unavailable", "service temporarily unavailable")
        if faults.garbage:
            body = f'{{"{self.dialect.envelope}": {{"tuluv": "DELIV'.encode()
            return Response(body, status_code=200, media_type="application/json")
        sent = request.headers.get(self.dialect.api_key_header, "").encode()
        if not hmac.compare_digest(sent, self._api_key):
            return _error(401, "unauthorized", "missing or wrong API key")
        try:
            return await handler(request)
        except _BadRequest as exc:
            return _error(exc.status, exc.code, exc.message)

    async def _operation(self, request: Request) -> Response:
        operation = request.path_params["operation"]
        lookup = self._lookups.get(operation)
        application = self._applications.get(operation)
        if lookup is None and application is None:
            raise _BadRequest("unknown_operation", "no such operation", 404)
        if request.method == "GET":
            if lookup is None:
                raise _BadRequest("method_not_allowed", "operation takes POST", 405)
            return self._lookup(lookup, request)
        if application is None:
            raise _BadRequest("method_not_allowed", "operation takes GET", 405)
        return await self._submit(application, request)

    # -- LOOKUP ----------------------------------------------------------------------------------

    def _lookup(self, service: Service, request: Request) -> Response:
        items = request.query_params.multi_items()
        query = dict(items)
        if len(query) != len(items):
            raise _BadRequest("repeated_parameter", "a parameter is repeated")
        self._check_fields(service, query, in_query=True)
        if self._no_record(service, query):
            raise _BadRequest("no_record", "no record matches", 404)
        seed = service.binding.operation + "?" + "&".join(f"{k}={v}" for k, v in sorted(items))
        types = {field.name: field.type for field in service.result}
        data: dict[str, Any] = {}
        for result_name, backend_name in service.binding.response.items():
            field_type = types[result_name]
            data[backend_name] = self._wire(
                field_type, fake_value(field_type, f"{seed}#{backend_name}")
            )
        return _json(200, {self.dialect.envelope: data})

    def _wire(self, field_type: FieldType, value: Any) -> Any:
        if isinstance(value, dt.date):
            return value.strftime(self.dialect.date_format)
        if field_type is FieldType.AMOUNT and self.dialect.amounts_as_strings:
            return str(value)
        return value

    def _no_record(self, service: Service, query: Mapping[str, str]) -> bool:
        form = {field.name: field for field in service.form}
        for backend_name, form_name in service.binding.request.items():
            value = query.get(backend_name)
            if form[form_name].type is FieldType.REGISTER_NUMBER and value:
                digits = "".join(ch for ch in value if ch.isdigit())
                if digits and set(digits) == {"0"}:
                    return True
        return False

    # -- SUBMIT ----------------------------------------------------------------------------------

    async def _submit(self, service: Service, request: Request) -> Response:
        key = request.headers.get("Idempotency-Key", "")
        if not key or len(key) > _MAX_KEY_LENGTH:
            raise _BadRequest("idempotency_key", "an Idempotency-Key header is required")
        try:
            body = orjson.loads(await request.body())
        except orjson.JSONDecodeError as exc:
            raise _BadRequest("bad_json", "body is not JSON") from exc
        if not isinstance(body, dict):
            raise _BadRequest("bad_json", "body is not a JSON object")
        self._check_fields(service, body, in_query=False)
        records = self._records
        assert records is not None  # serving implies started
        before = time.time()
        filing = await asyncio.to_thread(records.file, key, service.binding.operation, body)
        # A filing older than this request is the earlier one for the same key.
        created = filing.filed_at >= before
        self._filed[filing.reference] = (filing.idempotency_key, filing.filed_at)
        answer = {"lavlakh_dugaar": filing.reference, "tuluv": "DELIVERED"}
        return _json(201 if created else 200, {self.dialect.envelope: answer})

    # -- STATUS ----------------------------------------------------------------------------------

    async def _events(self, request: Request) -> Response:
        reference = request.path_params["reference"]
        filed = await self._filing(reference)
        if filed is None:
            raise _BadRequest("unknown_reference", "no application with this reference", 404)
        events = self._history(*filed)
        params = request.query_params
        allowed = {"page", "size"} if self.dialect.paging == "page" else {"cursor", "size"}
        if set(params) - allowed:
            raise _BadRequest("unknown_parameter", f"paging takes only {sorted(allowed)}")
        size = _positive_int(params.get("size"), PAGE_SIZE, "size")
        if size > _MAX_PAGE_SIZE:
            raise _BadRequest("bad_paging", f"size is at most {_MAX_PAGE_SIZE}")
        envelope = self.dialect.envelope
        if self.dialect.paging == "page":
            page = _positive_int(params.get("page"), 1, "page")
            total = max(1, math.ceil(len(events) / size))
            chunk = events[(page - 1) * size : page * size]
            return _json(200, {envelope: chunk, "page": page, "total_pages": total})
        offset = _decode_cursor(params.get("cursor"), reference)
        chunk = events[offset : offset + size]
        end = offset + size
        next_cursor = _encode_cursor(reference, end) if end < len(events) else None
        return _json(200, {envelope: chunk, "next_cursor": next_cursor})

    async def _filing(self, reference: str) -> tuple[str, float] | None:
        known = self._filed.get(reference)
        if known is not None:
            return known
        # Filed before a restart: the records on disk know it.
        records = self._records
        assert records is not None
        for filing in await asyncio.to_thread(records.filings):
            self._filed[filing.reference] = (filing.idempotency_key, filing.filed_at)
        return self._filed.get(reference)

    def _history(self, key: str, filed_at: float) -> list[dict[str, Any]]:
        """One event per change of ``review_state`` at each step boundary up to now."""
        if self.review_seconds > 0:
            reached = min(_FINAL_STEP, int((time.time() - filed_at) / self.review_seconds))
        else:
            reached = _FINAL_STEP
        events: list[dict[str, Any]] = []
        previous: tuple[str, str | None] | None = None
        for step in range(reached + 1):
            # Mid-step elapsed time on a unit clock: the same state review_state gives at step.
            state = review_state(key, step + 0.5, 1.0)
            if state == previous:
                continue
            previous = state
            at = dt.datetime.fromtimestamp(filed_at + step * max(self.review_seconds, 0.0))
            events.append(
                {
                    "tuluv": state[0],
                    "tailbar": state[1],
                    "ognoo": at.strftime(self.dialect.date_format),
                }
            )
        return events

    # -- field formats ---------------------------------------------------------------------------

    def _check_fields(self, service: Service, values: Mapping[str, Any], *, in_query: bool) -> None:
        form = {field.name: field for field in service.form}
        fields = {backend: form[name] for backend, name in service.binding.request.items()}
        unknown = set(values) - set(fields)
        if unknown:
            raise _BadRequest("unknown_field", f"unknown fields {sorted(unknown)}")
        for backend_name, field in fields.items():
            value = values.get(backend_name)
            if value is None:
                if field.required:
                    raise _BadRequest("missing_field", f"field {backend_name} is required")
                continue
            problem = self._format_problem(field, value, in_query)
            if problem is not None:
                raise _BadRequest(f"bad_{problem[0]}", f"field {backend_name}: {problem[1]}")

    def _format_problem(
        self, field: FormField, value: Any, in_query: bool
    ) -> tuple[str, str] | None:
        """(code suffix, description) when ``value`` is not in the dialect's format."""
        fmt = self.dialect.date_format
        strings = self.dialect.amounts_as_strings
        match field.type:
            case FieldType.DATE:
                if not isinstance(value, str) or not _is_date(value, fmt):
                    return "date", f"expected a date as {fmt}"
            case FieldType.AMOUNT:
                if in_query or strings:
                    if not isinstance(value, str) or not _is_decimal(value):
                        return "amount", "expected the amount as a decimal string"
                elif not _is_number(value):
                    return "amount", "expected the amount as a JSON number"
            case FieldType.NUMBER:
                # A connector cannot tell numbers from amounts, so both forms are fine here.
                text_ok = (in_query or strings) and isinstance(value, str) and _is_decimal(value)
                if not text_ok and (in_query or not _is_number(value)):
                    return "number", "expected a number"
            case FieldType.BOOLEAN:
                ok = value in ("true", "false") if in_query else isinstance(value, bool)
                if not ok:
                    return "boolean", "expected true or false"
            case FieldType.ENUM:
                if value not in {option.value for option in field.options}:
                    return "enum", "expected one of the listed options"
            case _:
                if not isinstance(value, str):
                    return "text", "expected text"
        return None


def _api_key(agency: Agency) -> str:
    return f"dev-api-{agency.code.lower()}"


def _is_date(text: str, fmt: str) -> bool:
    try:
        parsed = dt.datetime.strptime(text, fmt)
    except ValueError:
        return False
    # strptime accepts unpadded fields; the agency's own format is padded.
    return parsed.strftime(fmt) == text


def _is_decimal(text: str) -> bool:
    try:
        return Decimal(text).is_finite()
    except InvalidOperation:
        return False


def _is_number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


def _positive_int(text: str | None, default: int, name: str) -> int:
    if text is None:
        return default
    if not text.isdigit() or int(text) < 1:
        raise _BadRequest("bad_paging", f"{name} must be a positive integer")
    return int(text)


def _encode_cursor(reference: str, offset: int) -> str:
    return base64.urlsafe_b64encode(f"{reference}|{offset}".encode()).decode().rstrip("=")


def _decode_cursor(cursor: str | None, reference: str) -> int:
    if cursor is None:
        return 0
    try:
        raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)).decode()
        owner, _, offset = raw.rpartition("|")
    except (binascii.Error, UnicodeDecodeError) as exc:
        raise _BadRequest("bad_cursor", "cursor is not valid") from exc
    if owner != reference or not offset.isdigit():
        raise _BadRequest("bad_cursor", "cursor is not valid")
    return int(offset)
