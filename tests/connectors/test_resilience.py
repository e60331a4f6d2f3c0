"""Per-agency resilience: LOOKUP-only retries, the breaker's three states,
the concurrency cap, and what agencyHealth reports from them."""

from __future__ import annotations

import asyncio

import pytest

from connectors.base import Action, BackendRequest, BackendResponse, Connector
from connectors.errors import (
    BackendBusy,
    BackendRejected,
    BackendTimeout,
    BackendUnavailable,
    CircuitOpen,
    ConnectorError,
)
from connectors.registry import ConnectorRegistry
from connectors.resilience import ResilientConnector, breaker_factory
from gateway.catalog.loader import Catalog
from tests.factories import agency


class Scripted(Connector):
    """Fails with the scripted errors in turn, then answers; can be slow."""

    def __init__(self, *errors: ConnectorError, delay: float = 0.0) -> None:
        self.errors = list(errors)
        self.delay = delay
        self.calls = 0
        self.in_flight = 0
        self.peak = 0

    async def send(self, request: BackendRequest) -> BackendResponse:
        self.calls += 1
        self.in_flight += 1
        self.peak = max(self.peak, self.in_flight)
        try:
            await asyncio.sleep(self.delay)
            if self.errors:
                raise self.errors.pop(0)
            return BackendResponse(reference="R-1", status="DELIVERED")
        finally:
            self.in_flight -= 1


def request(action: Action = Action.LOOKUP) -> BackendRequest:
    return BackendRequest("TEST", "TEST-002", "LOOK", action, idempotency_key="k")


def wrap(inner: Connector, threshold: int = 3, ttl: float = 0.2, **kw: float) -> ResilientConnector:
    return ResilientConnector(inner, "TEST", breaker_factory(threshold, ttl), **kw)  # type: ignore[arg-type]


async def test_lookups_are_retried_on_transient_errors() -> None:
    inner = Scripted(BackendTimeout("TEST", "slow"), BackendUnavailable("TEST", "reset"))
    assert (await wrap(inner, threshold=10).send(request())).reference == "R-1"
    assert inner.calls == 3


async def test_a_lookup_failing_every_attempt_backs_off_then_raises_the_last_error(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    waits: list[float] = []
    real_sleep = asyncio.sleep

    async def sleep(seconds: float) -> None:
        if seconds:
            waits.append(seconds)
        await real_sleep(0)

    monkeypatch.setattr(asyncio, "sleep", sleep)
    last = BackendUnavailable("TEST", "still down")
    inner = Scripted(BackendTimeout("TEST", "slow"), BackendTimeout("TEST", "slow"), last)
    with pytest.raises(BackendUnavailable) as raised:
        await wrap(inner, threshold=10).send(request())
    assert raised.value is last
    assert inner.calls == 3
    # 0.05 s doubling per attempt, plus up to 0.05 s of jitter.
    assert len(waits) == 2
    assert 0.05 <= waits[0] <= 0.1 and 0.1 <= waits[1] <= 0.15


async def test_refusals_of_our_own_are_not_retried() -> None:
    inner = Scripted(delay=0.2)
    connector = wrap(inner, threshold=100, concurrency=1, queue_wait=0.05)
    busy = asyncio.create_task(connector.send(request()))
    await asyncio.sleep(0.01)
    with pytest.raises(BackendBusy):
        await connector.send(request())
    await busy
    assert inner.calls == 1


async def test_submissions_are_never_retried_here() -> None:
    inner = Scripted(BackendTimeout("TEST", "slow"))
    with pytest.raises(BackendTimeout):
        await wrap(inner, threshold=10).send(request(Action.SUBMIT))
    assert inner.calls == 1  # the outbox retries later, with the same key


async def test_rejections_are_not_retried_and_do_not_open_the_breaker() -> None:
    inner = Scripted(*(BackendRejected("TEST", "no") for _ in range(5)))
    connector = wrap(inner, threshold=2)
    for _ in range(5):
        with pytest.raises(BackendRejected):
            await connector.send(request())
    assert inner.calls == 5
    assert await connector.breaker_state() == "CLOSED"


async def test_breaker_opens_then_half_opens_then_closes() -> None:
    inner = Scripted(*(BackendUnavailable("TEST", "down") for _ in range(2)))
    connector = wrap(inner, threshold=2, ttl=0.2)
    for _ in range(2):
        with pytest.raises(BackendUnavailable):
            await connector.send(request(Action.SUBMIT))
    assert await connector.breaker_state() == "OPEN"
    with pytest.raises(CircuitOpen):
        await connector.send(request(Action.SUBMIT))
    assert inner.calls == 2  # an open breaker sends nothing
    await asyncio.sleep(0.25)
    assert (await connector.send(request(Action.SUBMIT))).reference == "R-1"  # the trial call
    assert await connector.breaker_state() == "CLOSED"


async def test_a_failed_trial_call_reopens_the_breaker() -> None:
    inner = Scripted(*(BackendUnavailable("TEST", "down") for _ in range(3)))
    connector = wrap(inner, threshold=2, ttl=0.1)
    for _ in range(2):
        with pytest.raises(BackendUnavailable):
            await connector.send(request(Action.SUBMIT))
    await asyncio.sleep(0.15)
    with pytest.raises(BackendUnavailable):
        await connector.send(request(Action.SUBMIT))
    assert await connector.breaker_state() == "OPEN"


async def test_the_concurrency_cap_holds_and_sheds_load() -> None:
    inner = Scripted(delay=0.2)
    connector = wrap(inner, threshold=100, concurrency=2, queue_wait=0.05)
    results = await asyncio.gather(
        *(connector.send(request(Action.SUBMIT)) for _ in range(4)), return_exceptions=True
    )
    assert inner.peak == 2
    assert sum(isinstance(r, BackendBusy) for r in results) == 2
    assert await connector.breaker_state() == "CLOSED"  # our own back-pressure is no agency fault


async def test_health_reflects_breaker_and_recent_failures() -> None:
    test_agency = agency("TEST")
    inner = Scripted(BackendUnavailable("TEST", "down"))
    registry = ConnectorRegistry(
        Catalog((test_agency,)), {}, overrides={"TEST": inner}, breaker_threshold=2
    )
    [fresh] = await registry.health()
    assert (fresh.status, fresh.breaker_state, fresh.latency_p50_ms) == ("UP", "CLOSED", None)
    connector = registry.connector("TEST")
    with pytest.raises(BackendUnavailable):
        await connector.send(request(Action.SUBMIT))
    await connector.send(request(Action.SUBMIT))
    [degraded] = await registry.health()
    assert degraded.status == "DEGRADED"
    assert degraded.last_error == "BackendUnavailable"
    assert degraded.latency_p50_ms is not None and degraded.latency_p95_ms is not None
    inner.errors = [BackendUnavailable("TEST", "down")] * 2
    for _ in range(2):
        with pytest.raises(BackendUnavailable):
            await connector.send(request(Action.SUBMIT))
    [down] = await registry.health()
    assert (down.status, down.breaker_state) == ("DOWN", "OPEN")
