"""``/metrics``: every family really fed, every agency present from start-up."""

from __future__ import annotations

import math
import time

from prometheus_client import CollectorRegistry, Counter, Histogram, generate_latest
from prometheus_client.parser import text_string_to_metric_families
from prometheus_client.samples import Sample

from connectors.errors import BackendTimeout
from gateway.catalog.loader import Catalog
from gateway.catalog.model import ServiceKind
from gateway.observability.metrics import MAX_OPERATIONS, OTHER_OPERATION, GatewayMetrics
from gateway.observability.request import RequestInfo
from tests.observability.conftest import LOOKUP, SUBMIT, Gateway, first_service

FAMILIES = {
    "khaalga_graphql_requests",
    "khaalga_graphql_request_duration_seconds",
    "khaalga_backend_calls",
    "khaalga_backend_call_duration_seconds",
    "khaalga_backend_errors",
    "khaalga_backend_breaker_state",
    "khaalga_outbox_pending",
    "khaalga_outbox_dead",
    "khaalga_outbox_oldest_pending_age_seconds",
    "khaalga_access_log_rows",
    "khaalga_access_log_write_duration_seconds",
    "khaalga_access_log_wait_seconds",
}


def samples(text: str) -> list[Sample]:
    return [s for family in text_string_to_metric_families(text) for s in family.samples]


def value(text: str, name: str, **labels: str) -> float:
    """The sum of the samples called ``name`` whose labels include ``labels``."""
    return sum(
        s.value for s in samples(text) if s.name == name and labels.items() <= s.labels.items()
    )


async def test_every_family_and_agency_is_there_before_any_traffic(
    gateway: Gateway, catalog: Catalog
) -> None:
    text = await gateway.scrape()
    families = {f.name for f in text_string_to_metric_families(text)}
    assert families >= FAMILIES
    agencies = {a.code for a in catalog.agencies}
    assert len(agencies) == 13
    for family in (
        "khaalga_backend_calls_total",
        "khaalga_backend_call_duration_seconds_count",
        "khaalga_backend_errors_total",
        "khaalga_backend_breaker_state",
        "khaalga_outbox_pending",
        "khaalga_outbox_oldest_pending_age_seconds",
    ):
        seen = {s.labels["agency"] for s in samples(text) if s.name == family}
        assert seen == agencies, family
    for agency in agencies:
        assert value(text, "khaalga_backend_breaker_state", agency=agency,
                     khaalga_backend_breaker_state="closed") == 1  # fmt: skip
        assert value(text, "khaalga_backend_calls_total", agency=agency) == 0
    for path in ("direct", "engine"):
        assert value(text, "khaalga_access_log_rows_total", path=path) == 0
        assert value(text, "khaalga_access_log_write_duration_seconds_count", path=path) == 0
    assert value(text, "khaalga_access_log_wait_seconds_count") == 0


async def test_counts_move_with_traffic(gateway: Gateway, catalog: Catalog) -> None:
    alice = gateway.citizen()
    lookup = first_service(catalog, ServiceKind.LOOKUP, "URB")
    application = first_service(catalog, ServiceKind.APPLICATION, "LAND")
    lookup_form, application_form = await gateway.form(lookup), await gateway.form(application)

    await gateway.api.data("query Catalog { agencies { code } }")
    await gateway.api.data("{ agencies { code } }")
    await alice.data(LOOKUP, {"c": lookup, "i": lookup_form})
    gateway.agencies["URB"].fail_with = BackendTimeout("URB", "simulated timeout")
    failed = await alice.gql(LOOKUP, {"c": lookup, "i": lookup_form})
    assert failed["errors"][0]["extensions"]["code"] == "AGENCY_UNAVAILABLE"
    await alice.data(SUBMIT, {"c": application, "f": application_form})
    await gateway.api.gql("{ nosuchfield }")
    unauthorised = await gateway.api.http.post(
        "/graphql", json={"query": "{ agencies { code } }"}, headers={"Authorization": "Basic x"}
    )
    assert unauthorised.status_code == 401

    text = await gateway.scrape()
    requests = "khaalga_graphql_requests_total"
    assert value(text, requests, operation="Catalog", type="query", outcome="ok") == 1
    assert value(text, requests, operation="anonymous", type="query", outcome="ok") == 1
    assert value(text, requests, operation="Look", outcome="ok") == 1
    assert value(text, requests, operation="Look", outcome="agency_error") == 1
    assert value(text, requests, operation="File", type="mutation", outcome="ok") == 1
    assert value(text, requests, operation="anonymous", outcome="invalid") == 1
    assert value(text, requests, operation="unknown", outcome="rejected") == 1
    assert value(text, "khaalga_graphql_request_duration_seconds_count", operation="Look") == 2

    # Retries are attempts too: a LOOKUP timing out is tried three times.
    calls = "khaalga_backend_calls_total"
    assert value(text, calls, agency="URB", action="LOOKUP", outcome="ok") == 1
    assert value(text, calls, agency="URB", action="LOOKUP", outcome="error") == 3
    assert value(text, "khaalga_backend_errors_total", agency="URB", error="BackendTimeout") == 3
    assert value(text, "khaalga_backend_call_duration_seconds_count", agency="URB",
                 action="LOOKUP") == 4  # fmt: skip
    assert value(text, calls, agency="TAX", action="LOOKUP") == 0

    # Both lookups reached the agency, so both have their row (the failed one
    # too), on the SQLite file's fast path; the submission's row is in its own
    # transaction, not counted here.
    assert value(text, "khaalga_access_log_rows_total", path="direct") == 2
    assert value(text, "khaalga_access_log_rows_total", path="engine") == 0
    assert value(text, "khaalga_access_log_wait_seconds_count") == 2
    assert 1 <= value(text, "khaalga_access_log_write_duration_seconds_count") <= 2
    assert value(text, "khaalga_access_log_wait_seconds_bucket", le="+Inf") == 2

    assert value(text, "khaalga_outbox_pending", agency="LAND") == 1
    assert value(text, "khaalga_outbox_pending", agency="URB") == 0
    assert value(text, "khaalga_outbox_oldest_pending_age_seconds", agency="LAND") > 0


async def test_an_open_breaker_shows_at_the_next_scrape(gateway: Gateway, catalog: Catalog) -> None:
    alice = gateway.citizen()
    lookup = first_service(catalog, ServiceKind.LOOKUP, "TAX")
    form = await gateway.form(lookup)
    gateway.agencies["TAX"].fail_with = BackendTimeout("TAX", "simulated timeout")
    for _ in range(3):  # 3 attempts each; the breaker opens after 5 failures
        await alice.gql(LOOKUP, {"c": lookup, "i": form})
    text = await gateway.scrape()
    assert value(text, "khaalga_backend_breaker_state", agency="TAX",
                 khaalga_backend_breaker_state="open") == 1  # fmt: skip
    assert value(text, "khaalga_backend_errors_total", agency="TAX", error="CircuitOpen") >= 1


async def test_no_personal_data_in_labels(gateway: Gateway, catalog: Catalog) -> None:
    alice = gateway.citizen()
    lookup = first_service(catalog, ServiceKind.LOOKUP, "URB")
    form = await gateway.form(lookup)
    query = LOOKUP.replace("query Look", "query UB99010112")
    await alice.data(query, {"c": lookup, "i": form})
    text = await gateway.scrape()
    assert "99010112" not in text
    assert value(text, "khaalga_graphql_requests_total", operation="unknown", outcome="ok") == 1


def test_operation_names_are_capped() -> None:
    metrics = GatewayMetrics(["URB"])
    for index in range(MAX_OPERATIONS + 5):
        name = f"Op{'abcdefghij'[index % 10]}{index // 10}"
        metrics.observe_request(RequestInfo("r", name, "query", "ok"), 0.01)
    operations = {
        s.labels["operation"]
        for s in samples(metrics.render().decode())
        if s.name == "khaalga_graphql_requests_total"
    }
    assert len(operations) == MAX_OPERATIONS + 1
    assert OTHER_OPERATION in operations


# The three families fed on every request, as they were declared with
# prometheus_client's own Counter and Histogram: the contract for their
# exposition (gateway/observability/request_series.py).
REQUESTS_HELP = "GraphQL requests by operation name and outcome"
SECONDS_HELP = "GraphQL request latency, whole HTTP exchange"
CACHE_HELP = (
    "Catalog-only requests answered from the shared response cache (hit) or executed (miss)"
)
PER_REQUEST = ("khaalga_graphql_request", "khaalga_response_cache")
# (operation, type, outcome, seconds): on a bucket bound, between bounds,
# above the last finite bound, zero; two outcomes sharing a latency series.
OBSERVATIONS = [
    ("Catalog", "query", "ok", 0.005),
    ("Catalog", "query", "ok", 0.007),
    ("Catalog", "query", "invalid", 0.1),
    ("Look", "query", "agency_error", 1.0),
    ("Look", "query", "ok", 0.3),
    ("File", "mutation", "ok", 10.0),
    ("File", "mutation", "ok", 12.5),
    ("anonymous", "query", "ok", 0.0),
]
CACHE_LOOKUPS = ["hit", "hit", "miss", "hit"]


def fed_metrics() -> GatewayMetrics:
    metrics = GatewayMetrics(["URB"])
    for operation, kind, outcome, seconds in OBSERVATIONS:
        metrics.observe_request(RequestInfo("r", operation, kind, outcome), seconds)
    for result in CACHE_LOOKUPS:
        metrics.response_cache_lookup(result)
    return metrics


def per_request_lines(text: str) -> list[str]:
    """The three families' lines, each ``_created`` sample's value blanked."""
    lines = []
    for line in text.splitlines():
        name = line.split()[2] if line.startswith("#") else line.split("{")[0]
        if not name.startswith(PER_REQUEST):
            continue
        if not line.startswith("#") and name.endswith("_created"):
            line = line.rsplit(" ", 1)[0] + " <time>"
        lines.append(line)
    return lines


def test_per_request_families_read_as_prometheus_clients_own() -> None:
    reference = CollectorRegistry()
    requests = Counter(
        "khaalga_graphql_requests", REQUESTS_HELP, ["operation", "type", "outcome"],
        registry=reference,
    )  # fmt: skip
    latency = Histogram(
        "khaalga_graphql_request_duration_seconds", SECONDS_HELP, ["operation", "type"],
        registry=reference,
    )  # fmt: skip
    cache = Counter("khaalga_response_cache", CACHE_HELP, ["result"], registry=reference)
    cache_series = {x: cache.labels(x) for x in ("hit", "miss")}
    for operation, kind, outcome, seconds in OBSERVATIONS:
        requests.labels(operation, kind, outcome).inc()
        latency.labels(operation, kind).observe(seconds)
    for result in CACHE_LOOKUPS:
        cache_series[result].inc()

    expected = per_request_lines(generate_latest(reference).decode())
    assert len(expected) > 50
    assert per_request_lines(fed_metrics().render().decode()) == expected


def test_per_request_families_exposition() -> None:
    before = time.time()
    metrics = fed_metrics()
    text = metrics.render().decode()
    lines = text.splitlines()
    for line in (
        f"# HELP khaalga_graphql_requests_total {REQUESTS_HELP}",
        "# TYPE khaalga_graphql_requests_total counter",
        f"# HELP khaalga_graphql_requests_created {REQUESTS_HELP}",
        "# TYPE khaalga_graphql_requests_created gauge",
        f"# HELP khaalga_graphql_request_duration_seconds {SECONDS_HELP}",
        "# TYPE khaalga_graphql_request_duration_seconds histogram",
        f"# HELP khaalga_graphql_request_duration_seconds_created {SECONDS_HELP}",
        "# TYPE khaalga_graphql_request_duration_seconds_created gauge",
        f"# HELP khaalga_response_cache_total {CACHE_HELP}",
        "# TYPE khaalga_response_cache_total counter",
        f"# HELP khaalga_response_cache_created {CACHE_HELP}",
        "# TYPE khaalga_response_cache_created gauge",
    ):
        assert line in lines

    requests = "khaalga_graphql_requests_total"
    assert value(text, requests, operation="Catalog", type="query", outcome="ok") == 2
    assert value(text, requests, operation="Catalog", type="query", outcome="invalid") == 1
    assert value(text, requests, operation="Look", outcome="agency_error") == 1
    assert value(text, requests, operation="File", type="mutation", outcome="ok") == 2
    assert value(text, requests) == len(OBSERVATIONS)
    assert value(text, "khaalga_response_cache_total", result="hit") == 3
    assert value(text, "khaalga_response_cache_total", result="miss") == 1

    name = "khaalga_graphql_request_duration_seconds"
    catalog = {"operation": "Catalog", "type": "query"}
    assert value(text, f"{name}_count", **catalog) == 3  # both outcomes
    assert math.isclose(value(text, f"{name}_sum", **catalog), 0.005 + 0.007 + 0.1)
    cumulative = {"0.005": 1, "0.01": 2, "0.05": 2, "0.075": 2, "0.1": 3, "10.0": 3, "+Inf": 3}
    for le, count in cumulative.items():
        assert value(text, f"{name}_bucket", le=le, **catalog) == count, le
    file = {"operation": "File", "type": "mutation"}
    assert value(text, f"{name}_bucket", le="7.5", **file) == 0
    assert value(text, f"{name}_bucket", le="10.0", **file) == 1  # on the last finite bound
    assert value(text, f"{name}_bucket", le="+Inf", **file) == 2
    assert value(text, f"{name}_sum", **file) == 22.5
    anonymous = {"operation": "anonymous", "type": "query"}
    assert value(text, f"{name}_bucket", le="0.005", **anonymous) == 1  # zero
    for labels in (catalog, file, anonymous, {"operation": "Look", "type": "query"}):
        count = value(text, f"{name}_count", **labels)
        assert value(text, f"{name}_bucket", le="+Inf", **labels) == count
        bounds = [
            s.labels["le"]
            for s in samples(text)
            if s.name == f"{name}_bucket" and labels.items() <= s.labels.items()
        ]
        assert bounds == [*map(str, Histogram.DEFAULT_BUCKETS[:-1]), "+Inf"]

    created = [s for s in samples(text) if s.name.endswith("_created") and
               s.name.startswith(PER_REQUEST)]  # fmt: skip
    assert len(created) == 6 + 4 + 2  # request label sets, latency pairs, hit and miss
    assert all(before <= s.value <= time.time() for s in created)
    # The same values through the registry, as tests elsewhere read them.
    assert metrics.registry.get_sample_value(f"{name}_count", catalog) == 3
    assert metrics.registry.get_sample_value(
        "khaalga_response_cache_total", {"result": "hit"}
    ) == 3  # fmt: skip


def test_the_operation_after_the_cap_is_counted_as_other() -> None:
    metrics = GatewayMetrics(["URB"])
    names = [f"Op{'abcdefghij'[i % 10]}{'abcdefghij'[i // 10 % 10]}{i // 100}" for i in
             range(MAX_OPERATIONS + 1)]  # fmt: skip
    assert len(set(names)) == MAX_OPERATIONS + 1
    for name in names:
        metrics.observe_request(RequestInfo("r", name, "query", "ok"), 0.01)
    metrics.observe_request(RequestInfo("r", names[0], "query", "ok"), 0.01)  # seen before the cap

    def count(operation: str) -> float | None:
        labels = {"operation": operation, "type": "query", "outcome": "ok"}
        return metrics.registry.get_sample_value("khaalga_graphql_requests_total", labels)

    assert count(names[0]) == 2
    assert count(names[MAX_OPERATIONS - 1]) == 1
    assert count(names[MAX_OPERATIONS]) is None
    assert count(OTHER_OPERATION) == 1
    assert metrics.registry.get_sample_value(
        "khaalga_graphql_request_duration_seconds_count",
        {"operation": OTHER_OPERATION, "type": "query"},
    ) == 1  # fmt: skip
