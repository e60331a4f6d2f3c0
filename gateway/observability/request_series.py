"""Counter and histogram families kept in plain Python numbers, without locks,
for the series fed on every GraphQL request and every back-end call
(gateway/observability/metrics.py: requests, request latency, response-cache
lookups, back-end calls and their latency, the resolvers' data-access rows).

Why: prometheus_client takes a ``threading.Lock`` for every value it
increments (a histogram observation locks its sum and a bucket, and checks for
exemplars), and ``Histogram.observe`` walks its buckets in Python. Measured
with callgrind, those three families cost ~20,700 machine instructions of a
cached catalog request's 166,000 (12%). Here a series is a few slots, and an
observation's bucket is found by bisection.

Why by hand: prometheus_client has no lock-free value class to plug into its
metrics, and its multiprocess mode (the one other value store it has) keeps
values in memory-mapped files, which is slower still. So these are
collectors of their own, registered on the app's registry like any other.

Why no lock: these series are updated only on the event loop's thread -- by
the request middleware, the fast path in front of the app
(gateway/http/public_answer.py), the response cache, the connectors'
resilience wrapper (connectors/resilience.py) and the resolvers' access log
(auth/audit/record.py) -- and a scrape reads
them on that same thread (``/metrics`` is an async endpoint that renders in
place), so no update interleaves with another update or with a read. Do not
feed them from another thread (``asyncio.to_thread``, an executor): counts
would be lost silently.

The exposition is prometheus_client's own for a ``Counter`` and a
``Histogram``: the same samples in the same order, ``_created`` included (the
time a series was first seen); tests/observability/test_metrics.py compares
the two.
"""

from __future__ import annotations

import math
import time
from abc import abstractmethod
from bisect import bisect_left
from collections.abc import Sequence
from itertools import accumulate
from typing import Generic, TypeVar

from prometheus_client import CollectorRegistry, Histogram
from prometheus_client.metrics_core import CounterMetricFamily, HistogramMetricFamily, Metric
from prometheus_client.registry import Collector
from prometheus_client.samples import Sample
from prometheus_client.utils import floatToGoString


class CounterSeries:
    """One label set's count."""

    __slots__ = ("created", "value")

    def __init__(self) -> None:
        self.value = 0
        self.created = time.time()

    def inc(self, amount: int = 1) -> None:
        self.value += amount


class HistogramSeries:
    """One label set's observations: a count per bucket (not cumulative; the
    last bucket is +Inf's) and their sum."""

    __slots__ = ("_bounds", "counts", "created", "sum")

    def __init__(self, bounds: list[float]) -> None:
        self._bounds = bounds
        self.counts = [0] * len(bounds)
        self.sum = 0.0
        self.created = time.time()

    def observe(self, value: float) -> None:
        # Prometheus's rule: a value counts in the first bucket whose bound is >= it.
        self.counts[bisect_left(self._bounds, value)] += 1
        self.sum += value


S = TypeVar("S", CounterSeries, HistogramSeries)


class _Family(Collector, Generic[S]):
    """What both kinds share: a name, its help text, and a series per label set."""

    _kind: str  # the exposition type: "counter" or "histogram"

    def __init__(
        self, name: str, documentation: str, labelnames: Sequence[str], *,
        registry: CollectorRegistry,
    ) -> None:  # fmt: skip
        self.name = name
        self.documentation = documentation
        self.labelnames = tuple(labelnames)
        self._series: dict[tuple[str, ...], S] = {}
        registry.register(self)

    def labels(self, *values: str) -> S:
        series = self._series.get(values)
        if series is None:
            if len(values) != len(self.labelnames):
                raise ValueError(f"expected label values for {self.labelnames}, got {values}")
            series = self._series[values] = self._new_series()
        return series

    @abstractmethod
    def _new_series(self) -> S: ...

    def describe(self) -> list[Metric]:
        # What the registry checks names against when the family is registered.
        return [Metric(self.name, self.documentation, self._kind)]


class LoopCounter(_Family[CounterSeries]):
    """A counter family (exposed as ``<name>_total``), one ``CounterSeries``
    per label set."""

    _kind = "counter"

    def _new_series(self) -> CounterSeries:
        return CounterSeries()

    def collect(self) -> list[Metric]:
        family = CounterMetricFamily(self.name, self.documentation, labels=self.labelnames)
        for values, series in list(self._series.items()):
            family.add_metric(values, float(series.value), created=series.created)
        return [family]


class LoopHistogram(_Family[HistogramSeries]):
    """A histogram family, one ``HistogramSeries`` per label set; buckets as
    prometheus_client's ``Histogram`` (its defaults unless told, +Inf added)."""

    _kind = "histogram"

    def __init__(
        self, name: str, documentation: str, labelnames: Sequence[str], *,
        registry: CollectorRegistry, buckets: Sequence[float] = Histogram.DEFAULT_BUCKETS,
    ) -> None:  # fmt: skip
        bounds = [float(b) for b in buckets]
        if not bounds or bounds != sorted(bounds):
            raise ValueError(f"buckets must be given in increasing order: {buckets}")
        if bounds[-1] != math.inf:
            bounds.append(math.inf)
        self.bounds = bounds
        self._le: list[str] = [floatToGoString(b) for b in bounds]  # type: ignore[no-untyped-call]
        super().__init__(name, documentation, labelnames, registry=registry)

    def _new_series(self) -> HistogramSeries:
        return HistogramSeries(self.bounds)

    def collect(self) -> list[Metric]:
        family = HistogramMetricFamily(self.name, self.documentation, labels=self.labelnames)
        for values, series in list(self._series.items()):
            cumulative = accumulate(series.counts)
            buckets = [(le, float(n)) for le, n in zip(self._le, cumulative, strict=True)]
            family.add_metric(values, buckets, series.sum)  # the buckets, _count, _sum
            labels = dict(zip(self.labelnames, values, strict=True))
            family.samples.append(Sample(f"{self.name}_created", labels, series.created, None))
        return [family]
