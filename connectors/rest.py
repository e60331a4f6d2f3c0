"""Connector for agencies whose back end is a REST/JSON API (GOV, URB, INSP, EDU).

Each agency speaks its own dialect, declared in the catalog's ``[backend.dialect]``
and parsed by ``RestDialect``: how dates are written, whether amounts travel as
strings, which key wraps the response data, which header carries the API key and
how lists are paged. The wire shape (shared with ``legacy.rest``):

- LOOKUP  ``GET  <base>/<operation>?<field>=<value>...`` -> ``{<envelope>: {field: value}}``
- SUBMIT  ``POST <base>/<operation>`` JSON body, ``Idempotency-Key`` header
          -> ``{<envelope>: {"lavlakh_dugaar": ref, "tuluv": status}}``
- STATUS  ``GET  <base>/applications/<ref>/events`` paged, oldest first
          -> ``{<envelope>: [{"tuluv", "tailbar", "ognoo"}...], <paging keys>}``
"""

from __future__ import annotations

import asyncio
import datetime as dt
import re
from collections.abc import Mapping
from dataclasses import dataclass
from decimal import Decimal
from typing import Any, Literal, NoReturn, TypeGuard
from urllib.parse import quote

import orjson
from yarl import URL

from connectors.base import Action, BackendRequest, BackendResponse, Connector
from connectors.config import BackendEndpoint, Timeouts
from connectors.errors import (
    BackendBusy,
    BackendRejected,
    BackendTimeout,
    BackendUnavailable,
    ProtocolError,
)
from connectors.wire import Answer, Wire
from gateway.catalog.model import Agency

STATUSES = frozenset({"DELIVERED", "IN_REVIEW", "NEEDS_INFO", "APPROVED", "REJECTED", "ISSUED"})

# A back end that never stops paging must not hold a STATUS call forever.
_MAX_PAGES = 1000
_ERROR_CODE = re.compile(r"^[a-z][a-z0-9_]{0,39}$")
_DEFAULT_TIMEOUTS = Timeouts()  # frozen, so one shared default is safe


@dataclass(frozen=True, slots=True)
class RestDialect:
    """One agency's REST quirks, from the catalog's ``[backend.dialect]`` table."""

    date_format: str = "%Y-%m-%d"
    amounts_as_strings: bool = False
    paging: Literal["page", "cursor"] = "page"
    api_key_header: str = "X-Api-Key"
    envelope: str = "data"

    @classmethod
    def of(cls, agency: Agency) -> RestDialect:
        """Parse and check the dialect; a typo in the catalog fails here, not mid-request."""
        raw = dict(agency.backend.dialect)
        unknown = set(raw) - set(cls.__dataclass_fields__)
        if unknown:
            raise ValueError(f"{agency.code}: unknown REST dialect keys {sorted(unknown)}")
        for name in ("date_format", "api_key_header", "envelope", "paging"):
            if name in raw and (not isinstance(raw[name], str) or not raw[name]):
                raise ValueError(f"{agency.code}: dialect.{name} must be a non-empty string")
        if "amounts_as_strings" in raw and not isinstance(raw["amounts_as_strings"], bool):
            raise ValueError(f"{agency.code}: dialect.amounts_as_strings must be a boolean")
        if raw.get("paging", "page") not in ("page", "cursor"):
            raise ValueError(f"{agency.code}: dialect.paging must be 'page' or 'cursor'")
        dialect = cls(**raw)
        # A format that does not survive a round trip would garble every date sent.
        sample = dt.date(2024, 11, 23)
        try:
            parsed = dt.datetime.strptime(sample.strftime(dialect.date_format), dialect.date_format)
        except ValueError as exc:
            raise ValueError(f"{agency.code}: dialect.date_format is not reversible") from exc
        if parsed.date() != sample:
            raise ValueError(f"{agency.code}: dialect.date_format is not reversible")
        return dialect


class RestConnector(Connector):
    """One pooled HTTP client per agency; safe for concurrent ``send`` calls."""

    @classmethod
    def check_dialect(cls, agency: Agency) -> None:
        RestDialect.of(agency)

    def __init__(
        self, agency: Agency, endpoint: BackendEndpoint, timeouts: Timeouts = _DEFAULT_TIMEOUTS
    ) -> None:
        self.agency = agency
        self.dialect = RestDialect.of(agency)
        self._code = agency.code
        self._timeouts = timeouts
        self._base = endpoint.url.rstrip("/") + "/"
        headers = {"Accept": "application/json"}
        if endpoint.api_key is not None:
            headers[self.dialect.api_key_header] = endpoint.api_key
        self._wire = Wire(agency.code, timeouts, headers)

    async def aclose(self) -> None:
        await self._wire.aclose()

    async def send(self, request: BackendRequest) -> BackendResponse:
        # Transport failures become connector errors in the wire; the rest here.
        what = f"{request.action.value} {request.operation}"
        try:
            async with asyncio.timeout(self._timeouts.total):
                return await self._dispatch(request)
        except TimeoutError as exc:
            raise BackendTimeout(
                self._code, f"{what}: no answer within the overall timeout"
            ) from exc
        except orjson.JSONDecodeError as exc:
            raise ProtocolError(self._code, f"{what}: response body is not JSON") from exc

    async def _dispatch(self, request: BackendRequest) -> BackendResponse:
        match request.action:
            case Action.LOOKUP:
                return await self._lookup(request)
            case Action.SUBMIT:
                return await self._submit(request)
            case Action.STATUS:
                return await self._status(request)
        raise BackendRejected(self._code, f"unsupported action {request.action!r}")

    # -- actions ---------------------------------------------------------------------------------

    async def _lookup(self, request: BackendRequest) -> BackendResponse:
        params = {
            name: self._query_value(value)
            for name, value in request.payload.items()
            if value is not None
        }
        response = await self._get(_segment(request.operation), params)
        if response.status_code == 404 and _error_code(response) != "unknown_operation":
            return BackendResponse(status="NOT_FOUND")
        data = self._unwrap(response, request)
        if not isinstance(data, dict):
            raise ProtocolError(self._code, f"{request.operation}: data is not an object")
        return BackendResponse(data=data)

    async def _submit(self, request: BackendRequest) -> BackendResponse:
        if not request.idempotency_key:
            raise BackendRejected(
                self._code, f"{request.operation}: SUBMIT needs an idempotency key"
            )
        body = {
            name: self._json_value(value)
            for name, value in request.payload.items()
            if value is not None
        }
        url = URL(self._base + _segment(request.operation), encoded=True)
        headers = {"Content-Type": "application/json", "Idempotency-Key": request.idempotency_key}
        response = await self._wire.send("POST", url, headers=headers, content=orjson.dumps(body))
        data = self._unwrap(response, request)
        reference = data.get("lavlakh_dugaar") if isinstance(data, dict) else None
        if not isinstance(reference, str) or not reference:
            raise ProtocolError(self._code, f"{request.operation}: answer has no reference")
        status = data.get("tuluv", "DELIVERED")
        if status not in STATUSES:
            raise ProtocolError(self._code, f"{request.operation}: unknown status in answer")
        return BackendResponse(reference=reference, status=status)

    async def _status(self, request: BackendRequest) -> BackendResponse:
        if not request.reference:
            raise BackendRejected(self._code, "STATUS needs the agency's reference")
        path = f"applications/{_segment(request.reference)}/events"
        events: list[Any] = []
        params: dict[str, str] = {}
        seen_cursors: set[str] = set()
        for _ in range(_MAX_PAGES):
            response = await self._get(path, params)
            body = self._body(response, request)
            page = body[self.dialect.envelope]
            if not isinstance(page, list):
                raise ProtocolError(self._code, "events: data is not a list")
            events.extend(page)
            next_params = self._next_page(body)
            if next_params is None:
                break
            cursor = next_params.get("cursor")
            if cursor is not None:
                if cursor in seen_cursors:
                    raise ProtocolError(self._code, "events: cursor repeats")
                seen_cursors.add(cursor)
            params = next_params
        else:
            raise ProtocolError(self._code, f"events: more than {_MAX_PAGES} pages")
        if not events:
            raise ProtocolError(self._code, "events: the application has no events")
        latest = events[-1]
        if not isinstance(latest, dict) or latest.get("tuluv") not in STATUSES:
            raise ProtocolError(self._code, "events: latest event has no known status")
        note = latest.get("tailbar")
        if note is not None and not isinstance(note, str):
            raise ProtocolError(self._code, "events: note is not text")
        return BackendResponse(reference=request.reference, status=latest["tuluv"], note=note)

    def _next_page(self, body: Mapping[str, Any]) -> dict[str, str] | None:
        if self.dialect.paging == "cursor":
            if "next_cursor" not in body:
                raise ProtocolError(self._code, "events: no next_cursor in a cursor-paged answer")
            cursor = body["next_cursor"]
            if cursor is None:
                return None
            if not isinstance(cursor, str) or not cursor:
                raise ProtocolError(self._code, "events: next_cursor is not a string")
            return {"cursor": cursor}
        page, total = body.get("page"), body.get("total_pages")
        if not _is_int(page) or not _is_int(total):
            raise ProtocolError(self._code, "events: no page/total_pages in a page-paged answer")
        return {"page": str(page + 1)} if page < total else None

    # -- wire helpers ----------------------------------------------------------------------------

    async def _get(self, path: str, params: Mapping[str, str]) -> Answer:
        # The path's segments are quoted already (``_segment``); yarl encodes the query.
        url = URL(self._base + path, encoded=True)
        return await self._wire.send("GET", url.with_query(params) if params else url)

    def _unwrap(self, response: Answer, request: BackendRequest) -> Any:
        return self._body(response, request)[self.dialect.envelope]

    def _body(self, response: Answer, request: BackendRequest) -> dict[str, Any]:
        """Check the HTTP status, decode JSON and insist on the envelope."""
        if response.status_code >= 400:
            self._raise_for_status(response, request)
        if response.status_code not in (200, 201):
            raise ProtocolError(
                self._code, f"{request.operation}: unexpected HTTP {response.status_code}"
            )
        body = orjson.loads(response.content)
        if not isinstance(body, dict) or self.dialect.envelope not in body:
            raise ProtocolError(self._code, f"{request.operation}: answer lacks the envelope")
        return body

    def _raise_for_status(self, response: Answer, request: BackendRequest) -> NoReturn:
        status = response.status_code
        # Only the agency's short error code is quoted: its free text may echo our values.
        code = _error_code(response)
        what = f"{request.action.value} {request.operation}: HTTP {status}"
        if code:
            what += f" ({code})"
        if status == 408:
            raise BackendTimeout(self._code, what)
        if status == 429:
            raise BackendBusy(self._code, what)
        if status >= 500:
            raise BackendUnavailable(self._code, what)
        raise BackendRejected(self._code, what)

    def _query_value(self, value: Any) -> str:
        if isinstance(value, bool):
            return "true" if value else "false"
        if isinstance(value, dt.date):
            return value.strftime(self.dialect.date_format)
        if isinstance(value, int | float | Decimal):
            return _number_text(value)
        return str(value)

    def _json_value(self, value: Any) -> Any:
        if isinstance(value, bool):
            return value
        if isinstance(value, dt.date):
            return value.strftime(self.dialect.date_format)
        if isinstance(value, int | float | Decimal):
            # The payload carries no field types, so every number follows the amount rule.
            if self.dialect.amounts_as_strings:
                return _number_text(value)
            if isinstance(value, Decimal):
                return int(value) if value == value.to_integral_value() else float(value)
            return value
        return value


def _segment(text: str) -> str:
    # Operations and references land in the path; never let them add segments or a query.
    return quote(text, safe="")


def _number_text(value: int | float | Decimal) -> str:
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    if isinstance(value, Decimal):
        return format(value, "f")
    return str(value)


def _is_int(value: Any) -> TypeGuard[int]:
    return isinstance(value, int) and not isinstance(value, bool)


def _error_code(response: Answer) -> str | None:
    """The agency's machine-readable error code, if it sent a well-formed one."""
    try:
        body = orjson.loads(response.content)
    except orjson.JSONDecodeError:
        return None
    error = body.get("error") if isinstance(body, dict) else None
    code = error.get("code") if isinstance(error, dict) else None
    return code if isinstance(code, str) and _ERROR_CODE.match(code) else None
