"""Connector for agencies whose back end is a batch file exchange (WELF, ENV).

Old welfare and environment systems do not answer calls: a batch job on the
agency side picks up request files from a shared folder and drops answer
files next to them. ``endpoint.url`` is ``file://`` + the exchange folder::

    <exchange>/in/       the gateway drops one request file per request
    <exchange>/ack/      the agency acknowledges each SUBMIT with its reference
    <exchange>/out/      the agency answers each LOOKUP and STATUS
    <exchange>/archive/  the agency keeps the requests it has taken (its business)

Naming. A request is ``in/<id>.req``, its answer ``ack/<id>.ack`` (SUBMIT) or
``out/<id>.res`` (LOOKUP, STATUS). For a SUBMIT the id is derived from the
idempotency key (``K<key>`` when the key is short lower-case ``[0-9a-z_-]``, so
it is readable and safe on case-insensitive shares, else ``H`` + 32 hex of its
SHA-256): a retried submission rewrites the *same* file, so an agency that has
not run yet sees it once, and one that has already filed it dedupes on the key,
which travels inside the file too. LOOKUP and STATUS get a fresh ``Q<uuid>``.

Record layout (one format, two dialects; ``legacy.files`` writes the same)::

    HDR  kind  action  operation  request-id  service-code  agency  record-count
    CTL  NAME  LEN  chunk...   control field: KEY REF RESULT STATUS NOTE REASON
    DTL  NAME  LEN  chunk...   business field, back-end name (UPPER_SNAKE)
    TRL  record-count  crc32

``kind`` is REQ, ACK or RES. ``LEN`` is the value's length in characters
(empty for null), so values keep trailing spaces and may be longer than one
fixed-width field: a long value continues in further ``field_width`` chunks
of the same record. ``record-count`` counts the records between header and
trailer; ``crc32`` (8 hex) covers every byte before the trailer line.
Records end with CRLF.

- ``format = "fixed"``: every field is padded with spaces to ``field_width``
  characters; no delimiters. Values must not contain CR or LF.
- ``format = "csv"``: fields joined by ``delimiter`` with CSV quoting; a value
  is a single chunk.

``encoding`` is applied to the whole file. cp1251 has no Ө/ө/Ү/ү, so (as the
old Mongolian "Mon" fonts did) they travel as Є/є/Ї/ї and are mapped back on
reading; any other character the code page lacks is a ``MappingError``.
Values: text as is, ``Y``/``N`` for booleans, dates in the dialect's
``date_format`` (default ``%Y-%m-%d``), numbers in decimal. Answers come back
as strings; ``connectors.mapping`` coerces them by result type.

Completeness. Writers write a hidden temporary name (``.<name>.*.tmp``),
fsync, and ``os.replace`` into place, but a legacy writer may well write in
place, so readers never trust a name alone: a file counts as complete only
when it ends with a trailer whose count and CRC match what precedes it. An
incomplete file is left alone and looked at again on the next poll; if the
answer is still incomplete when ``Timeouts.total`` runs out it is a
``ProtocolError``. A complete file that cannot be decoded or parsed is a
``ProtocolError`` at once (waiting cannot fix it); it is renamed to
``*.bad`` for the operators. Answers read successfully are deleted (they carry
personal data; the agency keeps its own archive).

Waiting polls the answer name with a growing sleep (10 ms up to 100 ms)
rather than inotify: exchange folders are usually network shares where file
notifications do not work. Nothing arriving by the deadline is
``BackendTimeout``; a timed-out LOOKUP/STATUS request is withdrawn from
``in/`` if the agency has not taken it yet, a SUBMIT is left for the agency
(delivery retries with the same key; the agency dedupes). A retried SUBMIT
whose acknowledgement is already waiting in ``ack/`` is answered from it
without writing the request again.

Failures: a missing exchange folder (share not mounted) and every OS error
are ``BackendUnavailable``, mapped at the one boundary in ``send``.
"""

from __future__ import annotations

import asyncio
import codecs
import contextlib
import csv
import datetime as dt
import errno
import hashlib
import io
import logging
import os
import re
import secrets
import uuid
import zlib
from collections.abc import Sequence
from dataclasses import dataclass, field
from decimal import Decimal
from pathlib import Path
from typing import Any, Literal
from urllib.parse import unquote, urlsplit

from connectors.base import Action, BackendRequest, BackendResponse, Connector
from connectors.config import BackendEndpoint, Timeouts
from connectors.errors import (
    BackendRejected,
    BackendTimeout,
    BackendUnavailable,
    MappingError,
    ProtocolError,
)
from gateway.catalog.model import Agency

log = logging.getLogger(__name__)

STATUSES = frozenset({"DELIVERED", "IN_REVIEW", "NEEDS_INFO", "APPROVED", "REJECTED", "ISSUED"})

FOLDERS = ("in", "ack", "out", "archive")
REQUEST_SUFFIX = ".req"
ACK_SUFFIX = ".ack"
RESULT_SUFFIX = ".res"
KINDS = frozenset({"REQ", "ACK", "RES"})
ACTIONS = frozenset(a.value for a in Action)

_CRLF = b"\r\n"
_HEADER_FIELDS = 8
# Request ids are at most 33 characters ("Q" + 32 hex); the header must hold one.
_MIN_WIDTH = 33
_SAFE_KEY = re.compile(r"[0-9a-z][0-9a-z_-]*")
_DIGITS = re.compile(r"[0-9]+")
_CRC = re.compile(r"[0-9a-f]{8}")
_REASON = re.compile(r"[A-Z][A-Z0-9_]{0,39}")
_FIRST_POLL = 0.01
_MAX_POLL = 0.1
_DEFAULT_TIMEOUTS = Timeouts()  # frozen, so one shared default is safe

# Mongolian letters missing from cp1251, carried on the code points the old
# Mongolian Windows fonts gave them.
_TO_1251 = str.maketrans("ӨөҮү", "ЄєЇї")
_FROM_1251 = str.maketrans("ЄєЇї", "ӨөҮү")


class Incomplete(Exception):
    """The file is still being written or was cut short: look again later."""


class Malformed(Exception):
    """The file is complete but not a valid exchange file: waiting cannot help.

    Messages name records and positions, never values.
    """


class NotEncodable(Exception):
    """A value does not fit the dialect (code page, CR/LF in a fixed-width file)."""

    def __init__(self, name: str) -> None:
        super().__init__(name)
        self.name = name


@dataclass(frozen=True, slots=True)
class Header:
    kind: str  # REQ, ACK or RES
    action: str  # LOOKUP, SUBMIT or STATUS
    operation: str
    request_id: str
    service: str
    agency: str


@dataclass(frozen=True, slots=True)
class Document:
    """One exchange file: header, control fields and business fields in order."""

    header: Header
    control: dict[str, str | None] = field(default_factory=dict)
    data: dict[str, str | None] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class FileDialect:
    """One agency's file quirks, from the catalog's ``[backend.dialect]`` table."""

    format: Literal["fixed", "csv"] = "csv"
    encoding: str = "utf-8"
    field_width: int = 40
    delimiter: str = ";"
    date_format: str = "%Y-%m-%d"

    @classmethod
    def of(cls, agency: Agency) -> FileDialect:
        """Parse and check the dialect; a typo in the catalog fails here, not mid-request."""
        raw = dict(agency.backend.dialect)
        unknown = set(raw) - set(cls.__dataclass_fields__)
        if unknown:
            raise ValueError(f"{agency.code}: unknown FILE dialect keys {sorted(unknown)}")
        if raw.get("format", "csv") not in ("fixed", "csv"):
            raise ValueError(f"{agency.code}: dialect.format must be 'fixed' or 'csv'")
        for name in ("encoding", "delimiter", "date_format"):
            if name in raw and (not isinstance(raw[name], str) or not raw[name]):
                raise ValueError(f"{agency.code}: dialect.{name} must be a non-empty string")
        width = raw.get("field_width", 40)
        if isinstance(width, bool) or not isinstance(width, int) or width < _MIN_WIDTH:
            raise ValueError(f"{agency.code}: dialect.field_width must be an integer >= 33")
        dialect = cls(**raw)
        try:
            codecs.lookup(dialect.encoding)
        except LookupError as exc:
            raise ValueError(f"{agency.code}: dialect.encoding is unknown") from exc
        # Framing is found on raw bytes, so the code page must keep ASCII as is.
        probe = "HDR TRL;,|\t0123456789abcdefABCDEF-_\r\n"
        try:
            ascii_safe = probe.encode(dialect.encoding) == probe.encode("ascii")
        except UnicodeError:
            ascii_safe = False
        if not ascii_safe:
            raise ValueError(f"{agency.code}: dialect.encoding must be ASCII-compatible")
        if len(dialect.delimiter) != 1 or dialect.delimiter in '\r\n"':
            raise ValueError(f"{agency.code}: dialect.delimiter must be one plain character")
        sample = dt.date(2024, 11, 23)
        try:
            parsed = dt.datetime.strptime(sample.strftime(dialect.date_format), dialect.date_format)
        except ValueError as exc:
            raise ValueError(f"{agency.code}: dialect.date_format is not reversible") from exc
        if parsed.date() != sample:
            raise ValueError(f"{agency.code}: dialect.date_format is not reversible")
        return dialect

    @property
    def _mongolian(self) -> bool:
        return codecs.lookup(self.encoding).name == "cp1251"

    # -- values -------------------------------------------------------------

    def to_text(self, value: Any) -> str | None:
        """A Python value as the file writes it; ``TypeError`` for anything else."""
        if value is None or isinstance(value, str):
            return value
        if isinstance(value, bool):
            return "Y" if value else "N"
        if isinstance(value, dt.datetime):
            return value.isoformat()
        if isinstance(value, dt.date):
            return value.strftime(self.date_format)
        if isinstance(value, int | float | Decimal):
            return str(value)
        raise TypeError(type(value).__name__)

    # -- writing ------------------------------------------------------------

    def line(self, fields: Sequence[str], name: str) -> bytes:
        """One record, encoded; ``NotEncodable(name)`` if it cannot be written."""
        if self.format == "fixed":
            width = self.field_width
            if any(len(f) > width or "\r" in f or "\n" in f for f in fields):
                raise NotEncodable(name)
            text = "".join(f.ljust(width) for f in fields) + "\r\n"
        else:
            buffer = io.StringIO()
            csv.writer(buffer, delimiter=self.delimiter, lineterminator="\r\n").writerow(fields)
            text = buffer.getvalue()
        if self._mongolian:
            text = text.translate(_TO_1251)
        try:
            return text.encode(self.encoding)
        except UnicodeEncodeError:
            raise NotEncodable(name) from None

    def frame(self, body: bytes, records: int) -> bytes:
        """``body`` (header and records, encoded) followed by its trailer."""
        fields = ["TRL", str(records), f"{zlib.crc32(body):08x}"]
        if self.format == "fixed":
            trailer = "".join(f.ljust(self.field_width) for f in fields)
        else:
            trailer = self.delimiter.join(fields)
        return body + trailer.encode("ascii") + _CRLF

    def header_fields(self, header: Header, records: int) -> list[str]:
        return [
            "HDR",
            header.kind,
            header.action,
            header.operation,
            header.request_id,
            header.service,
            header.agency,
            str(records),
        ]

    def _value_fields(self, value: str | None) -> list[str]:
        if value is None:
            return [""]
        if not value:
            return ["0"]
        if self.format == "csv":
            return [str(len(value)), value]
        width = self.field_width
        return [str(len(value)), *(value[i : i + width] for i in range(0, len(value), width))]

    def encode(self, document: Document) -> bytes:
        """The whole file; ``NotEncodable`` names the first field that does not fit."""
        count = len(document.control) + len(document.data)
        parts = [self.line(self.header_fields(document.header, count), "header")]
        for kind, fields in (("CTL", document.control), ("DTL", document.data)):
            for name, value in fields.items():
                parts.append(self.line([kind, name, *self._value_fields(value)], name))
        return self.frame(b"".join(parts), count)

    # -- reading ------------------------------------------------------------

    def decode(self, raw: bytes) -> Document:
        """Parse a whole file: ``Incomplete`` if it is not finished, ``Malformed``
        if it is finished but broken."""
        body, count = self._unframe(raw)
        try:
            text = body.decode(self.encoding)
        except UnicodeDecodeError:
            raise Malformed(f"content is not valid {self.encoding}") from None
        if self._mongolian:
            text = text.translate(_FROM_1251)
        records = self._split(text)
        if len(records) != count + 1:
            raise Malformed("trailer count does not match the records")
        return self._interpret(records, count)

    def _unframe(self, raw: bytes) -> tuple[bytes, int]:
        if not raw.endswith(_CRLF):
            raise Incomplete("no line end after the last record")
        cut = raw.rfind(_CRLF, 0, len(raw) - len(_CRLF))
        if cut < 0:
            raise Incomplete("no trailer")
        body, last = raw[: cut + len(_CRLF)], raw[cut + len(_CRLF) : -len(_CRLF)]
        try:
            text = last.decode("ascii")
        except UnicodeDecodeError:
            raise Incomplete("no trailer") from None
        if self.format == "fixed":
            width = self.field_width
            if len(text) != 3 * width:
                raise Incomplete("no trailer")
            fields = [text[i : i + width].rstrip(" ") for i in range(0, len(text), width)]
        else:
            fields = text.split(self.delimiter)
        if len(fields) != 3 or fields[0] != "TRL" or not _DIGITS.fullmatch(fields[1]):
            raise Incomplete("no trailer")
        if not _CRC.fullmatch(fields[2]) or fields[2] != f"{zlib.crc32(body):08x}":
            raise Incomplete("checksum does not match")
        return body, int(fields[1])

    def _split(self, text: str) -> list[list[str]]:
        if self.format == "csv":
            try:
                rows = list(
                    csv.reader(io.StringIO(text, newline=""), delimiter=self.delimiter, strict=True)
                )
            except csv.Error:
                raise Malformed("CSV quoting is broken") from None
            if any(not row for row in rows):
                raise Malformed("empty record")
            return rows
        width = self.field_width
        lines = text.split("\r\n")[:-1]  # the body ends with CRLF
        records = []
        for number, line in enumerate(lines):
            if not line or len(line) % width:
                raise Malformed(f"record {number} is not a whole number of fields")
            records.append([line[i : i + width] for i in range(0, len(line), width)])
        return records

    def _interpret(self, records: list[list[str]], count: int) -> Document:
        head = [f.rstrip(" ") for f in records[0]]
        if len(head) != _HEADER_FIELDS or head[0] != "HDR":
            raise Malformed("first record is not a header")
        if head[1] not in KINDS or head[2] not in ACTIONS:
            raise Malformed("header names an unknown kind or action")
        if head[7] != str(count):
            raise Malformed("header and trailer counts differ")
        header = Header(*head[1:7])
        control: dict[str, str | None] = {}
        data: dict[str, str | None] = {}
        for number, record in enumerate(records[1:], start=1):
            kind = record[0].rstrip(" ")
            if kind not in ("CTL", "DTL") or len(record) < 3:
                raise Malformed(f"record {number} has an unknown type")
            name = record[1].rstrip(" ")
            target = control if kind == "CTL" else data
            if not name or name in target:
                raise Malformed(f"record {number} has a missing or repeated name")
            target[name] = self._value(record[2:], number)
        return Document(header, control, data)

    def _value(self, fields: list[str], number: int) -> str | None:
        length, chunks = fields[0].rstrip(" "), fields[1:]
        if length == "":
            if chunks:
                raise Malformed(f"record {number}: null value with content")
            return None
        if not _DIGITS.fullmatch(length):
            raise Malformed(f"record {number}: bad length field")
        size = int(length)
        if size == 0:
            expected = 0
        elif self.format == "csv":
            expected = 1
        else:
            expected = -(-size // self.field_width)
        joined = "".join(chunks)
        if len(chunks) != expected or len(joined) < size or joined[size:].strip(" "):
            raise Malformed(f"record {number}: value does not match its length")
        return joined[:size]


# -- files ------------------------------------------------------------------


def exchange_path(url: str) -> Path:
    """The folder a ``file://`` endpoint names; ``ValueError`` for anything else."""
    parts = urlsplit(url)
    if parts.scheme != "file" or parts.netloc not in ("", "localhost") or not parts.path:
        raise ValueError("a FILE endpoint must be a file:// URL of a local folder")
    path = Path(unquote(parts.path))
    if not path.is_absolute():
        raise ValueError("a FILE endpoint must name an absolute folder")
    return path


def write_atomic(path: Path, data: bytes) -> None:
    """Write ``data`` to ``path`` so a reader sees the old file or the whole new one."""
    temporary = path.with_name(f".{path.name}.{os.getpid()}.{secrets.token_hex(4)}.tmp")
    descriptor = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o640)
    try:
        with os.fdopen(descriptor, "wb") as handle:
            handle.write(data)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(temporary, path)
    except BaseException:
        with contextlib.suppress(OSError):
            temporary.unlink()
        raise
    _fsync_folder(path.parent)


def _fsync_folder(folder: Path) -> None:
    # Makes the rename itself durable; not every platform can open a folder.
    try:
        descriptor = os.open(folder, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(descriptor)
    except OSError:
        pass
    finally:
        os.close(descriptor)


def read_if_present(path: Path) -> bytes | None:
    try:
        return path.read_bytes()
    except FileNotFoundError:
        return None


def remove_if_present(path: Path) -> None:
    with contextlib.suppress(FileNotFoundError):
        path.unlink()


def set_aside(path: Path) -> None:
    """Rename a broken file to ``*.bad`` so nobody reads it again but operators can."""
    with contextlib.suppress(FileNotFoundError):
        os.replace(path, path.with_name(path.name + ".bad"))


def _os_reason(exc: OSError) -> str:
    return errno.errorcode.get(exc.errno or 0, type(exc).__name__)


# -- connector --------------------------------------------------------------


class FileConnector(Connector):
    """Talks to one agency through its exchange folder; safe for concurrent ``send``."""

    @classmethod
    def check_dialect(cls, agency: Agency) -> None:
        FileDialect.of(agency)

    def __init__(
        self, agency: Agency, endpoint: BackendEndpoint, timeouts: Timeouts = _DEFAULT_TIMEOUTS
    ) -> None:
        self.agency = agency
        self.dialect = FileDialect.of(agency)
        self.root = exchange_path(endpoint.url)
        self._code = agency.code
        self._timeouts = timeouts
        self._closed = False

    async def aclose(self) -> None:
        # Nothing is held open between calls; later sends are refused.
        self._closed = True

    async def send(self, request: BackendRequest) -> BackendResponse:
        # The single boundary where OS failures become connector errors.
        if self._closed:
            raise BackendUnavailable(self._code, "connector is closed")
        try:
            return await self._send(request)
        except OSError as exc:
            raise BackendUnavailable(
                self._code, f"exchange folder I/O failed ({_os_reason(exc)})"
            ) from exc

    def request_id(self, request: BackendRequest) -> str:
        """The file stem: stable per idempotency key for SUBMIT, fresh otherwise."""
        if request.action is Action.SUBMIT:
            key = request.idempotency_key or ""
            if _SAFE_KEY.fullmatch(key) and len(key) < self.dialect.field_width:
                return "K" + key
            return "H" + hashlib.sha256(key.encode()).hexdigest()[:32]
        return "Q" + uuid.uuid4().hex

    async def _send(self, request: BackendRequest) -> BackendResponse:
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self._timeouts.total
        if not await asyncio.to_thread(self._folders_present):
            raise BackendUnavailable(self._code, "exchange folder is missing or not mounted")
        request_id = self.request_id(request)
        raw = self._encode(request, self._document(request, request_id))
        if request.action is Action.SUBMIT:
            answer = self.root / "ack" / (request_id + ACK_SUFFIX)
        else:
            answer = self.root / "out" / (request_id + RESULT_SUFFIX)
        pending = self.root / "in" / (request_id + REQUEST_SUFFIX)
        answered = False
        try:
            if request.action is Action.SUBMIT:
                earlier = await self._earlier_ack(answer)
                if earlier is not None:
                    answered = True
                    return self._interpret(request, request_id, earlier)
            await asyncio.to_thread(write_atomic, pending, raw)
            document = await self._await_answer(request, answer, deadline)
            answered = True
            return self._interpret(request, request_id, document)
        finally:
            if not answered and request.action is not Action.SUBMIT:
                # Nobody will read a late answer; spare the agency the work.
                with contextlib.suppress(OSError):
                    pending.unlink()

    def _folders_present(self) -> bool:
        return all((self.root / name).is_dir() for name in ("in", "ack", "out"))

    def _document(self, request: BackendRequest, request_id: str) -> Document:
        control: dict[str, str | None] = {}
        if request.action is Action.SUBMIT:
            if not request.idempotency_key:
                raise MappingError(
                    self._code, request.service_code, "idempotency_key", "SUBMIT needs a key"
                )
            control["KEY"] = request.idempotency_key
        elif request.action is Action.STATUS:
            if not request.reference:
                raise MappingError(
                    self._code, request.service_code, "reference", "STATUS needs a reference"
                )
            control["REF"] = request.reference
        data: dict[str, str | None] = {}
        for name, value in request.payload.items():
            try:
                data[name] = self.dialect.to_text(value)
            except TypeError:
                raise MappingError(
                    self._code, request.service_code, name, "value type cannot be written"
                ) from None
        header = Header(
            "REQ",
            request.action.value,
            request.operation,
            request_id,
            request.service_code,
            self._code,
        )
        return Document(header, control, data)

    def _encode(self, request: BackendRequest, document: Document) -> bytes:
        try:
            return self.dialect.encode(document)
        except NotEncodable as exc:
            raise MappingError(
                self._code,
                request.service_code,
                exc.name,
                f"does not fit the agency's {self.dialect.format} file "
                f"({self.dialect.encoding}, width {self.dialect.field_width})",
            ) from None

    async def _earlier_ack(self, path: Path) -> Document | None:
        """A complete acknowledgement left over from an earlier attempt with this key."""
        raw = await asyncio.to_thread(read_if_present, path)
        if raw is None:
            return None
        try:
            document = self.dialect.decode(raw)
        except (Incomplete, Malformed):
            return None  # the normal wait below deals with it
        await asyncio.to_thread(remove_if_present, path)
        log.info("%s: answered from an earlier acknowledgement %s", self._code, path.name)
        return document

    async def _await_answer(self, request: BackendRequest, path: Path, deadline: float) -> Document:
        loop = asyncio.get_running_loop()
        what = f"{request.action.value} {request.operation}"
        pause = _FIRST_POLL
        while True:
            raw = await asyncio.to_thread(read_if_present, path)
            if raw is not None:
                try:
                    document = self.dialect.decode(raw)
                except Incomplete:
                    pass  # being written, or cut short: judged at the deadline
                except Malformed as exc:
                    await asyncio.to_thread(set_aside, path)
                    raise ProtocolError(self._code, f"{what}: unreadable answer: {exc}") from exc
                else:
                    await asyncio.to_thread(remove_if_present, path)
                    return document
            remaining = deadline - loop.time()
            if remaining <= 0:
                if raw is not None:
                    await asyncio.to_thread(set_aside, path)
                    raise ProtocolError(
                        self._code, f"{what}: answer file stayed incomplete past the timeout"
                    )
                raise BackendTimeout(
                    self._code, f"{what}: no answer within {self._timeouts.total:g}s"
                )
            await asyncio.sleep(min(pause, remaining))
            pause = min(pause * 1.5, _MAX_POLL)

    def _interpret(
        self, request: BackendRequest, request_id: str, document: Document
    ) -> BackendResponse:
        what = f"{request.action.value} {request.operation}"
        header = document.header
        expected_kind = "ACK" if request.action is Action.SUBMIT else "RES"
        if (
            header.kind != expected_kind
            or header.action != request.action.value
            or header.request_id != request_id
        ):
            raise ProtocolError(self._code, f"{what}: answer belongs to another request")
        control = document.control
        result = control.get("RESULT")
        if result == "REJECTED":
            reason = control.get("REASON") or ""
            if not _REASON.fullmatch(reason):
                reason = "UNSPECIFIED"
            raise BackendRejected(self._code, f"{what}: agency refused ({reason})")
        match request.action:
            case Action.LOOKUP:
                if result == "NOT_FOUND":
                    return BackendResponse(status="NOT_FOUND")
                if result == "FOUND":
                    return BackendResponse(data=dict(document.data))
            case Action.SUBMIT:
                reference = control.get("REF")
                if result == "ACCEPTED" and reference:
                    return BackendResponse(reference=reference, status="DELIVERED")
            case Action.STATUS:
                status = control.get("STATUS")
                if result == "FOUND" and status in STATUSES:
                    return BackendResponse(
                        reference=control.get("REF") or request.reference,
                        status=status,
                        note=control.get("NOTE") or None,
                    )
        raise ProtocolError(self._code, f"{what}: answer has no valid result")
