"""``/metrics``: every family really fed, every agency present from start-up."""

from __future__ import annotations

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
