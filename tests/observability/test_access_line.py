"""The access line written without a record, when our JSON handler is the only
one a record would reach (gateway/observability/logs.py), is the line the
record would have made; with any other handler or filter, records are logged."""

from __future__ import annotations

import asyncio
import io
import logging
import time
from collections.abc import Iterator

import orjson
import pytest

from gateway.observability.logs import (
    ACCESS,
    PENDING_LINES,
    access_fields,
    configure_logging,
    log_request,
)
from gateway.observability.request import RequestInfo

FIELDS = access_fields(
    RequestInfo("req-1", "Catalog", "query", "ok"), "POST", "/graphql", 200, "ANONYMOUS", 0.00123
)


@pytest.fixture
def stream(monkeypatch: pytest.MonkeyPatch) -> Iterator[io.StringIO]:
    output = io.StringIO()
    configure_logging(output)
    monkeypatch.setattr(time, "time", lambda: 1764170449.2025)
    yield output
    configure_logging()


def test_the_line_is_the_records_line(
    stream: io.StringIO, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="khaalga.access")
    log_request(FIELDS)  # pytest's handler on the root logger sees the record
    assert [r.name for r in caplog.records] == ["khaalga.access"]
    monkeypatch.setattr(logging.getLogger(), "handlers", [])
    monkeypatch.setattr(ACCESS, "handle", None)  # none is made now
    log_request(FIELDS)
    by_record, written = stream.getvalue().splitlines()
    assert written == by_record
    assert '"ts":"2025-11-26T15:20:49.202+00:00"' in written


@pytest.mark.parametrize("where", ["logger filter", "handler filter", "another handler"])
def test_records_are_logged_when_anything_else_would_see_them(
    stream: io.StringIO, monkeypatch: pytest.MonkeyPatch, where: str
) -> None:
    monkeypatch.setattr(logging.getLogger(), "handlers", [])
    seen: list[logging.LogRecord] = []

    def keep(record: logging.LogRecord) -> bool:
        seen.append(record)
        return True

    [ours] = logging.getLogger("khaalga").handlers
    if where == "logger filter":
        monkeypatch.setattr(ACCESS, "filters", [keep])
    elif where == "handler filter":
        monkeypatch.setattr(ours, "filters", [keep])
    else:
        other = logging.Handler()
        other.emit = keep  # type: ignore[method-assign,assignment]
        monkeypatch.setattr(logging.getLogger(), "handlers", [other])
    log_request(FIELDS)
    assert [r.name for r in seen] == ["khaalga.access"]
    assert stream.getvalue().count("\n") == 1


class Writes(io.StringIO):
    """A stream that counts its writes (system calls, were it a file)."""

    writes = 0

    def write(self, text: str) -> int:
        self.writes += 1
        return super().write(text)


@pytest.fixture
def counted() -> Iterator[Writes]:
    output = Writes()
    configure_logging(output)
    yield output
    configure_logging()


def alone(monkeypatch: pytest.MonkeyPatch) -> None:
    # In the test itself: pytest puts its capturing handler on the root logger
    # after the fixtures are set up.
    monkeypatch.setattr(logging.getLogger(), "handlers", [])


async def test_lines_of_one_loop_turn_are_written_at_once_at_its_end(
    counted: Writes, monkeypatch: pytest.MonkeyPatch
) -> None:
    alone(monkeypatch)
    for _ in range(3):
        log_request(FIELDS)
    assert counted.getvalue() == ""  # the turn is not over
    await asyncio.sleep(0)
    assert counted.writes == 1
    assert [orjson.loads(line)["request_id"] for line in counted.getvalue().splitlines()] == [
        "req-1"
    ] * 3


async def test_a_turn_that_never_yields_does_not_hold_its_lines(
    counted: Writes, monkeypatch: pytest.MonkeyPatch
) -> None:
    alone(monkeypatch)
    for _ in range(PENDING_LINES + 1):
        log_request(FIELDS)
    assert counted.getvalue().count("\n") == PENDING_LINES
    await asyncio.sleep(0)
    assert counted.getvalue().count("\n") == PENDING_LINES + 1


async def test_pending_lines_go_out_before_any_other_line_and_on_flush(
    counted: Writes, monkeypatch: pytest.MonkeyPatch
) -> None:
    alone(monkeypatch)
    log_request(FIELDS)
    logging.getLogger("khaalga.test").warning("after the request")
    assert [orjson.loads(line)["logger"] for line in counted.getvalue().splitlines()] == [
        "khaalga.access",
        "khaalga.test",
    ]
    log_request(FIELDS)
    [ours] = logging.getLogger("khaalga").handlers
    ours.flush()  # as logging.shutdown does at exit
    assert counted.getvalue().count("\n") == 3


def test_each_new_loop_in_a_thread_gets_its_lines_written(
    counted: Writes, monkeypatch: pytest.MonkeyPatch
) -> None:
    alone(monkeypatch)

    async def one_turn() -> int:
        log_request(FIELDS)
        await asyncio.sleep(0)
        return counted.getvalue().count("\n")

    # The handler keeps the last loop it saw; the next one must not be mistaken for it.
    assert [asyncio.run(one_turn()) for _ in range(3)] == [1, 2, 3]
    log_request(FIELDS)  # no loop: at once
    assert counted.getvalue().count("\n") == 4


async def test_replacing_the_handler_writes_what_it_held(
    counted: Writes, monkeypatch: pytest.MonkeyPatch
) -> None:
    alone(monkeypatch)
    log_request(FIELDS)
    configure_logging(io.StringIO())  # before the turn ends
    assert counted.getvalue().count("\n") == 1
