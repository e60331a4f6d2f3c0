"""The ways there, each measured against the same gateway without it
(bench/ways.py), and what the report says of them. No figure is asserted:
timings belong in bench/results, not in a test."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import orjson
import pytest

from bench.loadgen import graphql_body
from bench.report import write_report
from bench.scenarios import BASELINE_ROW, CATALOG, CATALOG_ROW, Scenario
from bench.ways import Side, Way, compare, measure_ways
from gateway.db.migrate import upgrade_async
from gateway.settings import Settings

Asgi = Callable[[dict[str, Any], Any, Any], Awaitable[None]]


def answering(*answers: bytes) -> Asgi:
    """An ASGI app that gives ``answers`` in turn, then the last one forever."""
    given = 0

    async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
        nonlocal given
        await receive()
        body = answers[min(given, len(answers) - 1)]
        given += 1
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await send({"type": "http.response.body", "body": body})

    return app


DATA = orjson.dumps({"data": {"agencies": [{"code": "URB"}]}})
ERRORS = orjson.dumps({"errors": [{"message": "no"}]})


async def test_every_catalog_way_is_measured_on_both_sides_in_rounds(tmp_path: Path) -> None:
    await upgrade_async(Settings(var_dir=tmp_path).database_url)
    catalog = Scenario(CATALOG_ROW, "gateway", "/graphql", graphql_body(CATALOG), {}, BASELINE_ROW)
    ways = await measure_ways(tmp_path, 1, [catalog], requests=3, rounds=2)
    assert [way.name for way in ways] == [
        "response cache of the public catalog",
        "parser and validation caches",
        "orjson (against the standard library's json)",
        "precompiled allow-list (parsed and validated at start-up)",
    ]
    for way in ways:
        assert len(way.with_us) == len(way.without_us) == 2
        assert min(way.with_us + way.without_us) > 0
        assert way.errors == 0


async def test_sides_that_answer_differently_measure_nothing() -> None:
    other = orjson.dumps({"data": {"agencies": []}})
    with pytest.raises(RuntimeError, match="answer differently"):
        await compare("way", "x", Side(answering(DATA), b"{}", {}),
                      Side(answering(other), b"{}", {}), requests=2, rounds=2)  # fmt: skip


async def test_a_side_answering_errors_measures_nothing() -> None:
    with pytest.raises(RuntimeError, match="no"):
        await compare("way", "x", Side(answering(ERRORS), b"{}", {}),
                      Side(answering(ERRORS), b"{}", {}), requests=2, rounds=2)  # fmt: skip


async def test_errors_during_the_rounds_are_counted() -> None:
    # Checked good, then every answer an error: 2 warm-up + 2 rounds x 2 requests.
    way = await compare("way", "x", Side(answering(DATA, ERRORS), b"{}", {}),
                        Side(answering(DATA), b"{}", {}), requests=2, rounds=2)  # fmt: skip
    assert way.errors == 6


def test_the_report_gives_each_way_its_rounds_and_ratio(tmp_path: Path) -> None:
    way = Way("orjson", "a page of forms", (100.0, 110.0, 90.0), (300.0, 330.0, 280.0), 0)
    report = write_report([], tmp_path, 5, None, ways=[way]).read_text()
    assert "## The ways there, one at a time (in process)" in report
    row = "| orjson | a page of forms | 100 | 300 | 3.00× | 100, 110, 90 | 300, 330, 280 | 0 |"
    assert row in report
    assert "DataLoader batching per agency: measured above on a SQL agency" in report
