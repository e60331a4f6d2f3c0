"""The access line written without a record, when our JSON handler is the only
one a record would reach (gateway/observability/logs.py), is the line the
record would have made; with any other handler or filter, records are logged."""

from __future__ import annotations

import io
import logging
import time
from collections.abc import Iterator

import pytest

from gateway.observability.logs import ACCESS, access_fields, configure_logging, log_request
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
