"""Prometheus families, fed by the request middleware, the connectors'
resilience layer and, at scrape time, the breakers and the outbox.

Each app owns its own ``CollectorRegistry`` (tests build many apps in one
process; the global registry would refuse the second). Label values are
bounded: operation names are capped (``MAX_OPERATIONS``), agencies come from
the catalog, error labels are connector error class names.

The families fed on every GraphQL request (requests, request latency,
response-cache lookups), back-end call and data-access row are not
prometheus_client's own but lock-free collectors with the same exposition
(gateway/observability/request_series.py): they are updated only on the event
loop's thread, and scraped on it too.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable, Sequence

from prometheus_client import CollectorRegistry, Counter, Enum, Gauge
from prometheus_client.exposition import CONTENT_TYPE_LATEST, generate_latest
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker
from starlette.requests import Request
from starlette.responses import Response

from auth.audit.record import WRITTEN_BY, WrittenBy
from connectors.base import Action
from connectors.delivery import outbox_backlog
from connectors.errors import ConnectorError
from connectors.registry import ConnectorRegistry
from gateway.clock import utcnow
from gateway.observability.request import RequestInfo
from gateway.observability.request_series import (
    CounterSeries,
    HistogramSeries,
    LoopCounter,
    LoopHistogram,
)

log = logging.getLogger("khaalga.metrics")

MAX_OPERATIONS = 200
OTHER_OPERATION = "other"
ERROR_CLASSES = (
    "BackendTimeout",
    "BackendUnavailable",
    "CircuitOpen",
    "BackendBusy",
    "BackendRejected",
    "ProtocolError",
    "MappingError",
)
BREAKER_STATES = ["closed", "open", "half_open"]
# A row's commit takes well under a millisecond on a quiet machine; the
# default buckets start at 5 ms.
_ROW_BUCKETS = (0.0005, 0.001, 0.002, 0.003, 0.005, 0.0075, 0.01, 0.025, 0.05, 0.1, 0.25, 1.0)


class GatewayMetrics:
    def __init__(self, agencies: Sequence[str]) -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        self.agencies = tuple(agencies)
        self._operations: set[str] = set()
        r = self.registry
        self.requests = LoopCounter(
            "khaalga_graphql_requests", "GraphQL requests by operation name and outcome",
            ["operation", "type", "outcome"], registry=r,
        )  # fmt: skip
        self.request_seconds = LoopHistogram(
            "khaalga_graphql_request_duration_seconds", "GraphQL request latency, whole HTTP "
            "exchange", ["operation", "type"], registry=r,
        )  # fmt: skip
        self.backend_calls = LoopCounter(
            "khaalga_backend_calls", "Calls to agency back ends (each attempt, retries included)",
            ["agency", "action", "outcome"], registry=r,
        )  # fmt: skip
        self.backend_seconds = LoopHistogram(
            "khaalga_backend_call_duration_seconds", "Back-end call latency, queue wait included",
            ["agency", "action"], registry=r,
        )  # fmt: skip
        self.backend_errors = Counter(
            "khaalga_backend_errors", "Failed back-end calls by connector error class",
            ["agency", "error"], registry=r,
        )  # fmt: skip
        self.breaker = Enum(
            "khaalga_backend_breaker_state", "Circuit breaker state, read at scrape time",
            ["agency"], states=BREAKER_STATES, registry=r,
        )  # fmt: skip
        self.outbox_pending = Gauge(
            "khaalga_outbox_pending", "Outbox items waiting for delivery, read at scrape time",
            ["agency"], registry=r,
        )  # fmt: skip
        self.outbox_dead = Gauge(
            "khaalga_outbox_dead", "Dead-lettered outbox items, read at scrape time",
            ["agency"], registry=r,
        )  # fmt: skip
        self.outbox_oldest = Gauge(
            "khaalga_outbox_oldest_pending_age_seconds",
            "Age of the oldest pending outbox item (0 when none), read at scrape time",
            ["agency"], registry=r,
        )  # fmt: skip
        self.response_cache = LoopCounter(
            "khaalga_response_cache", "Catalog-only requests answered from the shared "
            "response cache (hit) or executed (miss)", ["result"], registry=r,
        )  # fmt: skip
        self._cache_series = {x: self.response_cache.labels(x) for x in ("hit", "miss")}
        self.rate_limited = Counter(
            "khaalga_rate_limit_rejections", "Requests refused with 429, by the policy that "
            "refused them (a kind's request or cost budget, or an app's quota)", ["policy"],
            registry=r,
        )  # fmt: skip
        # The resolvers' data-access rows: committed before any data is handed
        # out, so their commit can be the slow part of a lookup.
        self.access_rows = LoopCounter(
            "khaalga_access_log_rows", "Data-access log rows committed for the resolvers, by "
            "path: direct (the store's fast path) or engine", ["path"], registry=r,
        )  # fmt: skip
        self.access_writes = LoopHistogram(
            "khaalga_access_log_write_duration_seconds", "Commits of the resolvers' data-access "
            "rows (one per group of rows), by path", ["path"], registry=r, buckets=_ROW_BUCKETS,
        )  # fmt: skip
        self.access_wait = LoopHistogram(
            "khaalga_access_log_wait_seconds", "From a resolver's data-access rows being "
            "started to their commit (no data is handed out before)", [], registry=r,
            buckets=_ROW_BUCKETS,
        )  # fmt: skip
        self._access_series = {
            path: (self.access_rows.labels(path), self.access_writes.labels(path))
            for path in WRITTEN_BY
        }
        self._access_wait = self.access_wait.labels()
        self._request_series: dict[tuple[str, str, str], tuple[CounterSeries, HistogramSeries]] = {}
        self._declare_agencies()

    def _declare_agencies(self) -> None:
        # Every agency's series exist from start-up, so a dashboard or an
        # alert sees an idle agency as 0 rather than as missing.
        for agency in self.agencies:
            for action in Action:
                for outcome in ("ok", "error"):
                    self.backend_calls.labels(agency, action.value, outcome)
                self.backend_seconds.labels(agency, action.value)
            for error in ERROR_CLASSES:
                self.backend_errors.labels(agency, error)
            self.breaker.labels(agency).state("closed")
            self.outbox_pending.labels(agency).set(0)
            self.outbox_dead.labels(agency).set(0)
            self.outbox_oldest.labels(agency).set(0)

    # -- fed as requests go -------------------------------------------------

    def _operation(self, name: str) -> str:
        if name in self._operations:
            return name
        if len(self._operations) >= MAX_OPERATIONS:
            return OTHER_OPERATION
        self._operations.add(name)
        return name

    def observe_request(self, info: RequestInfo, seconds: float) -> None:
        operation = self._operation(info.operation)
        key = (operation, info.operation_type, info.outcome)
        series = self._request_series.get(key)
        if series is None:
            # One lookup for both series rather than a labels() each; the keys
            # are few (bounded operation names x types x outcomes).
            series = (
                self.requests.labels(*key),
                self.request_seconds.labels(operation, info.operation_type),
            )
            self._request_series[key] = series
        series[0].inc()
        series[1].observe(seconds)

    def response_cache_lookup(self, result: str) -> None:
        self._cache_series[result].inc()

    def call_finished(
        self, agency: str, action: Action, seconds: float, error: ConnectorError | None
    ) -> None:
        """``connectors.resilience.CallObserver``: one back-end attempt ended."""
        self.backend_calls.labels(agency, action.value, "ok" if error is None else "error").inc()
        self.backend_seconds.labels(agency, action.value).observe(seconds)
        if error is not None:
            name = type(error).__name__
            self.backend_errors.labels(agency, name if name in ERROR_CLASSES else "other").inc()

    def access_rows_written(self, path: WrittenBy, rows: int, seconds: float) -> None:
        """``auth.audit.record.AccessLogObserver``: a group of rows committed."""
        counted, timed = self._access_series[path]
        counted.inc(rows)
        timed.observe(seconds)

    def access_rows_waited(self, seconds: float) -> None:
        """``auth.audit.record.AccessLogObserver``: a resolver's rows are in."""
        self._access_wait.observe(seconds)

    # -- read at scrape time ------------------------------------------------

    async def refresh(
        self, registry: ConnectorRegistry, sessions: async_sessionmaker[AsyncSession]
    ) -> None:
        for agency in self.agencies:
            state = await registry.connector(agency).breaker_state()
            self.breaker.labels(agency).state(state.lower())
        try:
            backlog = await outbox_backlog(sessions)
        except Exception:  # a scrape must still answer while the database is down
            log.warning("outbox figures unavailable for this scrape", exc_info=True)
            return
        now = utcnow()
        for agency in self.agencies:
            entry = backlog.get(agency)
            oldest = entry.oldest_pending if entry else None
            self.outbox_pending.labels(agency).set(entry.pending if entry else 0)
            self.outbox_dead.labels(agency).set(entry.dead if entry else 0)
            self.outbox_oldest.labels(agency).set((now - oldest).total_seconds() if oldest else 0)

    def render(self) -> bytes:
        return generate_latest(self.registry)


def metrics_endpoint(
    metrics: GatewayMetrics,
    registry: ConnectorRegistry,
    sessions: async_sessionmaker[AsyncSession],
) -> Callable[[Request], Awaitable[Response]]:
    async def endpoint(_: Request) -> Response:
        await metrics.refresh(registry, sessions)
        return Response(metrics.render(), media_type=CONTENT_TYPE_LATEST)

    return endpoint
