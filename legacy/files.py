"""A simulated agency whose back end is a batch job over an exchange folder.

The file format, folder layout and naming are described in
``connectors.files`` and shared from there (one definition, so the format
cannot drift between the two sides); this module plays the agency:

- ``start`` creates ``<workdir>/exchange/{in,ack,out,archive}``, opens the
  agency's register (``<workdir>/records.sqlite``) and starts the batch job, an
  asyncio task that polls ``in/`` every ``poll_interval`` seconds (0.1 s by
  default) and handles each complete ``*.req`` file, oldest first.
- An incomplete request (no valid trailer: still being written, or cut short)
  is left where it is for the next poll; a complete one that cannot be parsed
  is moved to ``archive/*.bad`` without an answer, as a real batch job would
  reject the file, not the request.
- A taken request is moved to ``archive/`` *before* it is answered, so a
  request the gateway withdraws after a timeout is simply not processed.
- SUBMIT files through ``AgencyRecords``, which dedupes on the idempotency key
  carried in the ``KEY`` control record, and answers ``ack/<id>.ack`` with the
  agency's reference. LOOKUP answers ``out/<id>.res`` with ``fakedata`` values
  seeded by agency, operation, the request's values and the field name; a
  register number that is not one of ``samples.CITIZENS`` is NOT_FOUND. STATUS
  answers from ``review_state``; an unknown reference is REJECTED.
- Answers are written atomically (temporary name, fsync, ``os.replace``).

Faults: ``down`` pauses the batch job (requests wait in ``in/``); ``delay``
sleeps before each request is taken; ``garbage`` answers (without
processing) with a file whose trailer and checksum are right but whose
content does not decode in the agency's code page.

Test hook: ``half_write_pause`` (seconds, default None) makes the job write
each answer *in place* as a legacy writer does: the first half, a pause, then
the rest; a reader that trusted the name alone would read half a file.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
import os
import time
from collections.abc import Callable, Mapping
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any, TypeVar

from connectors.config import BackendEndpoint
from connectors.files import (
    ACK_SUFFIX,
    FOLDERS,
    REQUEST_SUFFIX,
    RESULT_SUFFIX,
    Document,
    FileDialect,
    Header,
    Incomplete,
    Malformed,
    read_if_present,
    write_atomic,
)
from gateway.catalog.model import Agency, FieldType, Service, ServiceKind
from legacy.base import Simulator
from legacy.fakedata import fake_value
from legacy.records import AgencyRecords, Filing
from legacy.samples import CITIZENS

log = logging.getLogger(__name__)

_T = TypeVar("_T")

# Bytes no supported code page decodes (0x98 is unassigned in cp1251, 0xFF is
# never valid UTF-8).
_GARBAGE = b"\x98\xff\xfe\x81 \x98\xff\r\n"


def lookup_seed(agency: str, operation: str, values: Mapping[str, str | None], name: str) -> str:
    """The fakedata seed of one answer field: the same question, the same answer."""
    asked = "&".join(f"{key}={values[key] or ''}" for key in sorted(values))
    return f"{agency}:{operation}:{asked}:{name}"


class FileSimulator(Simulator):
    def __init__(
        self,
        agency: Agency,
        workdir: Path,
        port: int,
        review_seconds: float = 3.0,
        *,
        poll_interval: float = 0.1,
    ) -> None:
        super().__init__(agency, workdir, port, review_seconds)
        self.poll_interval = poll_interval
        self.half_write_pause: float | None = None
        self.dialect = FileDialect.of(agency)
        self.exchange = workdir / "exchange"
        self._services = {service.code: service for service in agency.services}
        self._records: AgencyRecords | None = None
        self._task: asyncio.Task[None] | None = None
        self._executor: ThreadPoolExecutor | None = None
        self._waiting: set[str] = set()  # incomplete requests already logged

    @classmethod
    def endpoint_for(cls, agency: Agency, workdir: Path, port: int) -> BackendEndpoint:
        return BackendEndpoint(url=Path(os.path.abspath(workdir / "exchange")).as_uri())

    async def start(self) -> None:
        if self._task is not None:
            return
        # One worker of our own: the job is serial anyway, and ``stop`` can wait
        # for a file or database step still running after the task is cancelled.
        self._executor = ThreadPoolExecutor(1, thread_name_prefix=f"file-{self.agency.code}")
        await self._io(self._prepare)
        self._task = asyncio.create_task(self._run(), name=f"file-batch-{self.agency.code}")

    async def stop(self) -> None:
        task, self._task = self._task, None
        if task is not None:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
        executor, self._executor = self._executor, None
        if executor is not None:
            await asyncio.to_thread(executor.shutdown, wait=True)
        if self._records is not None:
            self._records.close()
            self._records = None

    def filings(self) -> list[Filing]:
        return self._register().filings()

    def attempts(self) -> int:
        """How many SUBMITs the agency has processed, repeats included."""
        return self._register().attempts()

    # -- the batch job ------------------------------------------------------

    async def _io(self, function: Callable[..., _T], *args: Any) -> _T:
        if self._executor is None:
            raise RuntimeError("the simulator is not running")
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(self._executor, functools.partial(function, *args))

    def _prepare(self) -> None:
        for name in FOLDERS:
            (self.exchange / name).mkdir(parents=True, exist_ok=True)
        self._register()

    def _register(self) -> AgencyRecords:
        if self._records is None:
            self._records = AgencyRecords(
                self.workdir / "records.sqlite", self.agency.code, self.review_seconds
            )
        return self._records

    async def _run(self) -> None:
        while True:
            if not self.faults.down:
                try:
                    await self.run_once()
                except Exception:
                    # One bad run must not end the batch job; the next poll retries.
                    log.exception("%s: batch run failed", self.agency.code)
            await asyncio.sleep(self.poll_interval)

    async def run_once(self) -> None:
        """One pass over ``in/``: handle every complete request waiting there."""
        for path in await self._io(self._pending):
            if self.faults.down:
                return
            await self._handle(path)

    def _pending(self) -> list[Path]:
        found: list[tuple[float, str, Path]] = []
        with os.scandir(self.exchange / "in") as entries:
            for entry in entries:
                if entry.name.startswith(".") or not entry.name.endswith(REQUEST_SUFFIX):
                    continue  # temporary names are never complete
                with contextlib.suppress(FileNotFoundError):
                    found.append((entry.stat().st_mtime, entry.name, Path(entry.path)))
        return [path for _, _, path in sorted(found)]

    async def _handle(self, path: Path) -> None:
        raw = await self._io(read_if_present, path)
        if raw is None:
            return  # withdrawn by the gateway
        try:
            request = self.dialect.decode(raw)
        except Incomplete:
            if path.name not in self._waiting:
                self._waiting.add(path.name)
                log.info("%s: request %s is incomplete; waiting", self.agency.code, path.name)
            return
        except Malformed as exc:
            log.warning("%s: request %s set aside: %s", self.agency.code, path.name, exc)
            await self._io(self._archive, path, ".bad")
            return
        self._waiting.discard(path.name)
        if request.header.request_id != path.name.removesuffix(REQUEST_SUFFIX):
            # The answer is named by the id, so it must be the file's own name.
            log.warning("%s: request %s names another id", self.agency.code, path.name)
            await self._io(self._archive, path, ".bad")
            return
        if self.faults.delay > 0:
            await asyncio.sleep(self.faults.delay)
        if self.faults.down:
            return
        if not await self._io(self._archive, path, ""):
            return  # withdrawn while we waited
        header = request.header
        folder, suffix = (
            ("ack", ACK_SUFFIX) if header.action == "SUBMIT" else ("out", RESULT_SUFFIX)
        )
        target = self.exchange / folder / (header.request_id + suffix)
        if self.faults.garbage:
            answer = self._garbage(header)
        else:
            answer = self.dialect.encode(await self._io(self._answer, request))
        await self._deliver(target, answer)
        log.info("%s: answered %s %s", self.agency.code, header.action, header.request_id)

    def _archive(self, path: Path, suffix: str) -> bool:
        target = self.exchange / "archive" / f"{path.stem}.{time.time_ns()}{path.suffix}{suffix}"
        try:
            os.replace(path, target)
        except FileNotFoundError:
            return False
        return True

    async def _deliver(self, target: Path, data: bytes) -> None:
        pause = self.half_write_pause
        if pause is None:
            await self._io(write_atomic, target, data)
            return
        half = len(data) // 2
        await self._io(_write_in_place, target, data[:half], "wb")
        await asyncio.sleep(pause)
        await self._io(_write_in_place, target, data[half:], "ab")

    def _garbage(self, header: Header) -> bytes:
        answer = Header(
            "ACK" if header.action == "SUBMIT" else "RES",
            header.action,
            header.operation,
            header.request_id,
            header.service,
            header.agency,
        )
        body = self.dialect.line(self.dialect.header_fields(answer, 1), "header") + _GARBAGE
        return self.dialect.frame(body, 1)

    # -- the agency's rules -------------------------------------------------

    def _answer(self, request: Document) -> Document:
        header = request.header
        kind = "ACK" if header.action == "SUBMIT" else "RES"
        answer = Header(
            kind,
            header.action,
            header.operation,
            header.request_id,
            header.service,
            self.agency.code,
        )
        service = self._services.get(header.service)
        if header.kind != "REQ" or header.agency != self.agency.code:
            return _refusal(answer, "NOT_FOR_THIS_AGENCY")
        if service is None or service.binding.operation != header.operation:
            return _refusal(answer, "UNKNOWN_OPERATION")
        match header.action:
            case "SUBMIT":
                return self._submit(answer, service, request)
            case "LOOKUP":
                return self._lookup(answer, service, request)
            case _:
                return self._status(answer, request)

    def _submit(self, answer: Header, service: Service, request: Document) -> Document:
        key = request.control.get("KEY")
        if service.kind is not ServiceKind.APPLICATION or not key:
            return _refusal(answer, "NOT_AN_APPLICATION" if key else "NO_KEY")
        filing = self._register().file(key, service.binding.operation, dict(request.data))
        return Document(
            answer, {"RESULT": "ACCEPTED", "REF": filing.reference, "STATUS": "DELIVERED"}
        )

    def _lookup(self, answer: Header, service: Service, request: Document) -> Document:
        if service.kind is not ServiceKind.LOOKUP:
            return _refusal(answer, "NOT_A_LOOKUP")
        form = {field.name: field.type for field in service.form}
        for backend_name, form_name in service.binding.request.items():
            value = request.data.get(backend_name)
            if form[form_name] is FieldType.REGISTER_NUMBER and value not in CITIZENS:
                return Document(answer, {"RESULT": "NOT_FOUND"})
        types = {field.name: field.type for field in service.result}
        data: dict[str, str | None] = {}
        for result_name, backend_name in service.binding.response.items():
            seed = lookup_seed(self.agency.code, answer.operation, request.data, backend_name)
            data[backend_name] = self.dialect.to_text(fake_value(types[result_name], seed))
        return Document(answer, {"RESULT": "FOUND"}, data)

    def _status(self, answer: Header, request: Document) -> Document:
        reference = request.control.get("REF")
        state = self._register().status(reference) if reference else None
        if state is None:
            return _refusal(answer, "UNKNOWN_REFERENCE")
        status, note = state
        return Document(
            answer, {"RESULT": "FOUND", "REF": reference, "STATUS": status, "NOTE": note}
        )


def _refusal(answer: Header, reason: str) -> Document:
    return Document(answer, {"RESULT": "REJECTED", "REASON": reason})


def _write_in_place(path: Path, data: bytes, mode: str) -> None:
    with path.open(mode) as handle:
        handle.write(data)
        handle.flush()
