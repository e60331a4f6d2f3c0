"""One JSON line per request, with fixed keys and nothing personal."""

from __future__ import annotations

import datetime as dt
import io
import logging
from collections.abc import Iterator
from typing import Any

import orjson
import pytest

from gateway.catalog.loader import Catalog
from gateway.catalog.model import ServiceKind
from gateway.observability.logs import JsonFormatter, configure_logging
from legacy.samples import CITIZENS
from tests.observability.conftest import LOOKUP, SUBMIT, Gateway, first_service

KEYS = {"request_id", "operation", "principal_kind", "status", "duration_ms"}
CAROL = CITIZENS[2]


@pytest.fixture
def log_output(caplog: pytest.LogCaptureFixture) -> Iterator[io.StringIO]:
    """Everything the ``khaalga`` loggers write, as JSON lines."""
    stream = io.StringIO()
    # Libraries at the level a deployment runs them (SQLAlchemy's engine logs
    # statement parameters at INFO, by design); ours at every level.
    caplog.set_level(logging.WARNING)
    caplog.set_level(logging.DEBUG, logger="khaalga")
    configure_logging(stream, logging.DEBUG)
    yield stream
    configure_logging()


def access_lines(stream: io.StringIO) -> list[dict[str, Any]]:
    lines = [orjson.loads(line) for line in stream.getvalue().splitlines()]
    return [line for line in lines if line["logger"] == "khaalga.access"]


async def test_one_line_per_request_with_the_request_id_echoed(
    gateway: Gateway, log_output: io.StringIO
) -> None:
    response = await gateway.citizen().http.post(
        "/graphql",
        json={"query": "query Catalog { agencies { code } }"},
        headers={"X-Request-Id": "req-42.a"},
    )
    assert response.status_code == 200
    assert response.headers["x-request-id"] == "req-42.a"
    [line] = access_lines(log_output)
    assert line.keys() >= KEYS
    assert line["request_id"] == "req-42.a"
    assert (line["operation"], line["principal_kind"], line["status"]) == (
        "Catalog", "ANONYMOUS", 200,
    )  # fmt: skip
    assert isinstance(line["duration_ms"], float)


async def test_a_request_id_that_is_not_a_plain_token_is_replaced(
    gateway: Gateway, log_output: io.StringIO
) -> None:
    response = await gateway.api.http.get(
        "/healthz", headers={"X-Request-Id": "99010112 <script>alert(1)</script>"}
    )
    generated = response.headers["x-request-id"]
    assert generated.isalnum() and len(generated) == 32
    [line] = access_lines(log_output)
    assert line["request_id"] == generated


async def test_no_register_number_token_or_variable_reaches_the_logs(
    gateway: Gateway, catalog: Catalog, log_output: io.StringIO, caplog: pytest.LogCaptureFixture
) -> None:
    carol = gateway.citizen(CAROL)
    assert carol.token is not None
    lookup = first_service(catalog, ServiceKind.LOOKUP, "URB")
    application = first_service(catalog, ServiceKind.APPLICATION, "GOV")
    lookup_form = await gateway.form(lookup, CAROL)
    application_form = await gateway.form(application, CAROL)
    log_output.truncate(0)
    log_output.seek(0)
    caplog.clear()
    await carol.data(LOOKUP, {"c": lookup, "i": lookup_form})
    await carol.data(SUBMIT, {"c": application, "f": application_form})
    # Rejected input and values graphql-core quotes in its error messages
    # (logged by strawberry) go through the error paths too.
    await carol.gql(LOOKUP, {"c": lookup, "i": {**lookup_form, "bogus": CAROL}})
    await carol.gql("query($n: Int!) { services(first: $n) { totalCount } }", {"n": CAROL})
    await carol.gql('{ services(first: "' + CAROL + '") { totalCount } }')
    await carol.gql("query($k: ServiceKind) { services(filter: {kind: $k}) { totalCount } }",
                    {"k": CAROL.encode("unicode_escape").decode()})  # fmt: skip
    # Over GET the query and its variables travel in the query string.
    await carol.http.get(
        "/graphql",
        params={"query": LOOKUP, "variables": f'{{"c":"{CAROL}"}}'},
        headers={"Authorization": f"Bearer {carol.token}"},
    )

    lines = access_lines(log_output)
    assert len(lines) == 7
    assert "strawberry.execution" in caplog.text  # the error paths were really taken
    assert {line["principal_kind"] for line in lines} == {"CITIZEN"}
    everything = log_output.getvalue() + caplog.text
    for secret in (CAROL, CAROL.encode("unicode_escape").decode(), carol.token):
        assert secret not in everything


@pytest.mark.parametrize("created", [1764170449.2025, 1764170449.9999, 1764170450.0004, 0.5])
def test_the_timestamp_is_utc_iso_8601_to_the_millisecond(created: float) -> None:
    record = logging.LogRecord("khaalga.test", logging.INFO, __file__, 1, "m", None, None)
    record.created, record.msecs = created, (created - int(created)) * 1000
    stamp = orjson.loads(JsonFormatter().format(record))["ts"]
    expected = dt.datetime.fromtimestamp(created, dt.UTC).isoformat(timespec="milliseconds")
    assert stamp == expected
