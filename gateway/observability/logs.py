"""JSON logs with the standard library: one object per line (orjson).

``configure_logging`` puts a JSON handler on the ``khaalga`` logger tree;
the request middleware writes one ``khaalga.access`` line per request with
fixed, non-personal keys only (see ``access_fields``).
"""

from __future__ import annotations

import asyncio
import logging
import sys
import threading
import time
from typing import Any, TextIO

import orjson

from gateway.observability.request import RequestInfo

ACCESS = logging.getLogger("khaalga.access")
FIELDS = "khaalga_fields"  # the ``extra`` key carrying a line's structured fields
PENDING_LINES = 64  # access lines held for the end of a loop turn, at most


class JsonFormatter(logging.Formatter):
    # The date and time to the second, made once per second: building it with
    # ``datetime.isoformat`` for each line was a tenth of a cached request's CPU.
    # One tuple, replaced whole, so a thread logging meanwhile never pairs
    # one second with another's text.
    _second: tuple[int, str] = (-1, "")

    def _timestamp(self, created: float) -> str:
        whole, second = int(created), self._second
        if second[0] != whole:
            second = (whole, time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(whole)))
            self._second = second
        # The milliseconds as LogRecord works out ``msecs``.
        return f"{second[1]}.{int((created - whole) * 1000):03d}+00:00"

    def format(self, record: logging.LogRecord) -> str:
        fields = getattr(record, FIELDS, None)
        return self.render(
            record.created, record.levelname, record.name, record.getMessage(),
            fields if isinstance(fields, dict) else {},
            self.formatException(record.exc_info) if record.exc_info else None,
        )  # fmt: skip

    def render(
        self, created: float, level: str, logger: str, message: str, fields: dict[str, Any],
        exc: str | None = None,
    ) -> str:  # fmt: skip
        """The line of a record with these attributes (``log_request`` has none to give)."""
        line: dict[str, Any] = {
            "ts": self._timestamp(created), "level": level.lower(), "logger": logger,
            "msg": message, **fields,
        }  # fmt: skip
        if exc is not None:
            line["exc"] = exc
        return orjson.dumps(line, default=str).decode()


class _JsonHandler(logging.StreamHandler[TextIO]):
    """Ours (configuring again replaces it rather than adding one), and
    without a fixed stream it writes to whatever ``sys.stderr`` is at the time,
    as ``logging.lastResort`` does, so a replaced stderr (pytest) is followed.

    Access lines made on an event loop are written together once per turn of
    the loop, as nginx's ``access_log ... buffer=`` does but without its
    delay: the lines of every request a turn finished go out in one write,
    at the start of the next turn. With stderr unbuffered (as under
    ``PYTHONUNBUFFERED``, common in containers) each line was a system call of
    its own. Any other record, ``flush`` and ``close`` write what is pending
    first, so the order of lines is kept and nothing is left behind at exit
    (``logging.shutdown`` flushes every handler)."""

    def __init__(self, stream: TextIO | None) -> None:
        super().__init__(stream if stream is not None else sys.stderr)
        self._fixed = stream
        self._pending: list[str] = []
        self._loop: tuple[int, asyncio.AbstractEventLoop] | None = None

    def emit(self, record: logging.LogRecord) -> None:
        self._write_pending()
        if self._fixed is None:
            self.stream = sys.stderr
        super().emit(record)

    def flush(self) -> None:
        self._write_pending()
        super().flush()

    def close(self) -> None:
        self._write_pending()
        super().close()

    def write_access(self, message: str, fields: dict[str, Any]) -> bool:
        """Write the line ``emit`` would for an access record with ``message``
        and ``fields``, made now; False if it did not (another formatter, or
        the write failed: the record is then logged as usual, which reports it)."""
        formatter = self.formatter
        if not isinstance(formatter, JsonFormatter):
            return False
        line = formatter.render(time.time(), "INFO", ACCESS.name, message, fields)
        loop = self._running_loop()
        if loop is None:
            return self._write(line + self.terminator)
        with self.lock:  # type: ignore[union-attr]  # made in Handler.__init__
            # Another thread's loop may be logging too (tests serve the app in one).
            self._pending.append(line)
            held = len(self._pending)
        if held == 1:
            loop.call_soon(self._write_pending)
        elif held >= PENDING_LINES:  # a turn that never ends (no await yields)
            self._write_pending()
        return True

    def _running_loop(self) -> asyncio.AbstractEventLoop | None:
        """The loop running in this thread, if any. The one found last is
        kept with its thread: ``asyncio.get_running_loop`` makes a ``getpid``
        system call each time (it checks for a fork), one per request here.
        A loop still running is still this thread's: a loop runs in the thread
        that started it, and none of ours is stopped and run in another."""
        thread = threading.get_ident()
        seen = self._loop
        if seen is not None and seen[0] == thread and seen[1].is_running():
            return seen[1]
        try:
            loop = asyncio.get_running_loop()
        except RuntimeError:
            return None
        self._loop = (thread, loop)
        return loop

    def _write_pending(self) -> None:
        with self.lock:  # type: ignore[union-attr]
            lines, self._pending = self._pending, []
        if lines and not self._write(self.terminator.join(lines) + self.terminator):
            # As ``emit`` reports a failed write; the lines' own records are long gone.
            self.handleError(logging.makeLogRecord({"name": ACCESS.name, "msg": "access lines"}))

    def _write(self, text: str) -> bool:
        self.acquire()  # as ``handle`` does around ``emit``
        try:
            if self._fixed is None:
                self.stream = sys.stderr
            self.stream.write(text)
            self.stream.flush()
        except Exception:
            return False
        finally:
            self.release()
        return True


def configure_logging(stream: TextIO | None = None, level: int = logging.INFO) -> None:
    """JSON lines for the ``khaalga`` logger tree. Records still propagate to
    the root logger, which has no handler in ``khaalga serve`` (so nothing is
    printed twice) and has pytest's in tests (so ``caplog`` keeps working)."""
    # Our lines carry none of these, and LogRecord looks each up on every
    # record (the logging HOWTO's "Optimization" section).
    logging.logThreads = logging.logProcesses = logging.logMultiprocessing = False
    logger = logging.getLogger("khaalga")
    for handler in [h for h in logger.handlers if isinstance(h, _JsonHandler)]:
        logger.removeHandler(handler)
        handler.close()  # its pending lines are written
    handler = _JsonHandler(stream)
    handler.setFormatter(JsonFormatter())
    logger.addHandler(handler)
    logger.setLevel(level)


def access_fields(
    info: RequestInfo, method: str, path: str, status: int, principal_kind: str, seconds: float
) -> dict[str, Any]:
    """The whole of what a request line says. ``path`` is the route path only:
    a GET query string carries the query and its variables."""
    return {
        "request_id": info.request_id,
        "method": method,
        "path": path,
        "operation": info.operation,
        "operation_type": info.operation_type,
        "outcome": info.outcome,
        "principal_kind": principal_kind,
        "status": status,
        "duration_ms": round(seconds * 1000, 2),
    }


def log_request(fields: dict[str, Any]) -> None:
    if not ACCESS.isEnabledFor(logging.INFO):
        return
    # The message repeats the essentials so a plain-text set-up still says something.
    message, args = "%s %s %s %s %.1fms", (
        fields["method"], fields["path"], fields["status"], fields["operation"],
        fields["duration_ms"],
    )  # fmt: skip
    # When the record would reach our JSON handler alone (``khaalga serve``),
    # the handler writes its line without the record: making it and passing it
    # through the logging machinery was 13 µs of a cached catalog request's 29
    # in process; this way the line costs 6.
    handler = _sole_handler()
    if handler is not None and handler.write_access(message % args, fields):
        return
    # The record is made and handled directly rather than through
    # ``ACCESS.info``, which would also walk the stack for the caller's file
    # and line (``findCaller``): a fixed place here, and about a fifth of the
    # line's cost on every request. Handlers and filters see it as usual.
    record = ACCESS.makeRecord(
        ACCESS.name, logging.INFO, __file__, 0, message, args, None, func="log_request",
        extra={FIELDS: fields},
    )  # fmt: skip
    ACCESS.handle(record)


def _sole_handler() -> _JsonHandler | None:
    """Our JSON handler if an access record would reach it and no other
    handler, nor any filter (``Logger.handle``, then ``callHandlers``' walk)."""
    if ACCESS.disabled or ACCESS.filters:
        return None
    found = None
    logger: logging.Logger | None = ACCESS
    while logger is not None:
        for handler in logger.handlers:
            if handler.level > logging.INFO:
                continue  # the record is not for this one
            if found is not None or not isinstance(handler, _JsonHandler) or handler.filters:
                return None
            found = handler
        logger = logger.parent if logger.propagate else None
    return found
