"""Per-agency resilience around any connector: concurrency cap, circuit
breaker (purgatory), retries for idempotent LOOKUPs only (tenacity), and the
rolling figures ``agencyHealth`` reports.

Order matters: retry( breaker( cap( connector ) ) ) — a retry re-enters the
breaker, so an opening breaker stops the retries too.
"""

from __future__ import annotations

import asyncio
import contextlib
import statistics
import time
from collections import deque
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from typing import Protocol, TypeVar

from opentelemetry import trace
from purgatory import AsyncCircuitBreakerFactory
from purgatory.domain.model import OpenedState
from tenacity import (
    AsyncRetrying,
    retry_if_exception,
    stop_after_attempt,
    wait_exponential_jitter,
)

from connectors.base import Action, BackendRequest, BackendResponse, BatchingConnector, Connector
from connectors.errors import (
    BackendBusy,
    CircuitOpen,
    ConnectorError,
    PermanentError,
    TransientError,
)

R = TypeVar("R")
_WINDOW = 256
_tracer = trace.get_tracer("khaalga.connectors")
_NO_SPAN = contextlib.nullcontext()


class CallObserver(Protocol):
    """Told of every attempt at an agency (metrics); set on ``ResilientConnector.observer``."""

    def call_finished(
        self, agency: str, action: Action, seconds: float, error: ConnectorError | None
    ) -> None: ...


@dataclass
class AgencyStats:
    latencies_ms: deque[float] = field(default_factory=lambda: deque(maxlen=_WINDOW))
    outcomes: deque[bool] = field(default_factory=lambda: deque(maxlen=20))
    last_error: str | None = None

    def record(self, elapsed_ms: float, error: ConnectorError | None) -> None:
        self.latencies_ms.append(elapsed_ms)
        self.outcomes.append(error is None)
        if error is not None:
            # The class name and our own message only: never upstream text,
            # which may quote personal data back at us.
            self.last_error = type(error).__name__

    def percentile(self, q: int) -> float | None:
        if not self.latencies_ms:
            return None
        if len(self.latencies_ms) == 1:
            return self.latencies_ms[0]
        return statistics.quantiles(self.latencies_ms, n=100, method="inclusive")[q - 1]

    @property
    def recent_failures(self) -> int:
        return sum(1 for ok in self.outcomes if not ok)


def _retryable(exc: BaseException) -> bool:
    return isinstance(exc, TransientError) and not isinstance(exc, CircuitOpen | BackendBusy)


class ResilientConnector(Connector):
    def __init__(
        self,
        inner: Connector,
        agency: str,
        breakers: AsyncCircuitBreakerFactory,
        *,
        concurrency: int = 20,
        queue_wait: float = 2.0,
        lookup_attempts: int = 3,
    ) -> None:
        self.inner = inner
        self.agency = agency
        self.breakers = breakers
        self.stats = AgencyStats()
        self.observer: CallObserver | None = None
        # Off when the gateway exports no traces: even a non-recording span
        # (opened, made current, closed) was ~3% of a LOOKUP's own CPU.
        self.traced = True
        self._slots = asyncio.Semaphore(concurrency)
        self._queue_wait = queue_wait
        self._lookup_attempts = lookup_attempts

    async def breaker_state(self) -> str:
        breaker = await self.breakers.get_breaker(self.agency)
        state: str = breaker.context.state
        return {"closed": "CLOSED", "opened": "OPEN", "half-opened": "HALF_OPEN"}[state]

    async def send(
        self, request: BackendRequest, *, sending: Callable[[], None] | None = None
    ) -> BackendResponse:
        """``sending`` is called once, when the breaker and the cap first let
        the request through to the back end (the data-access log starts its
        row then: schema/operations.py); a refused call never calls it."""
        inner = self.inner
        return await self._attempted(request.action, lambda: inner.send(request), sending)

    async def send_many(
        self, requests: Sequence[BackendRequest], *, sending: Callable[[], None] | None = None
    ) -> list[BackendResponse | ConnectorError]:
        """Several LOOKUPs as one call to a ``BatchingConnector``'s back end:
        one pass through the breaker, one slot of the cap, one observation,
        retried as a whole. Each request's own failure comes back in its
        place; a failure of the call raises, as ``send`` does."""
        inner = self.inner
        if len(requests) == 1:
            return [await self.send(requests[0], sending=sending)]
        if not isinstance(inner, BatchingConnector):
            raise TypeError(f"{self.agency}'s connector does not batch")
        return await self._attempted(Action.LOOKUP, lambda: inner.lookup_many(requests), sending)

    @property
    def batches(self) -> bool:
        return isinstance(self.inner, BatchingConnector)

    async def _attempted(
        self, action: Action, call: Callable[[], Awaitable[R]], sending: Callable[[], None] | None
    ) -> R:
        once = [sending] if sending is not None else []
        try:
            return await self._guarded(action, call, once)
        except ConnectorError as exc:
            if action is not Action.LOOKUP or not _retryable(exc):
                raise
            failure = exc
        return await self._retried(action, call, failure, once)

    async def _retried(
        self,
        action: Action,
        call: Callable[[], Awaitable[R]],
        failure: ConnectorError,
        once: list[Callable[[], None]],
    ) -> R:
        """The further attempts at a LOOKUP whose first attempt failed.

        Tenacity is brought in only now: around every call it cost an
        eighth of a LOOKUP's CPU, its bookkeeping and the collection of the
        reference cycles its state (a lock, a future, a thread-local) leaves
        behind. It is told of the failed attempt as its own first, so the
        attempts and the waits between them are its, as before.
        """
        failures = [failure]
        retrying = AsyncRetrying(
            stop=stop_after_attempt(self._lookup_attempts),
            wait=wait_exponential_jitter(multiplier=0.05, max=0.5, jitter=0.05),
            retry=retry_if_exception(_retryable),
            reraise=True,
        )
        async for attempt in retrying:
            with attempt:
                if failures:
                    raise failures.pop()
                return await self._guarded(action, call, once)
        raise AssertionError("unreachable: tenacity reraises")

    async def _guarded(
        self, action: Action, call: Callable[[], Awaitable[R]], once: list[Callable[[], None]]
    ) -> R:
        # One span and one observation per attempt, breaker and cap included,
        # so a refused call (CircuitOpen, BackendBusy) is seen as well.
        span: contextlib.AbstractContextManager[object] = _NO_SPAN
        if self.traced:
            attributes = {"khaalga.agency": self.agency, "khaalga.action": action.value}
            name = f"{self.agency} {action.value}"
            span = _tracer.start_as_current_span(name, attributes=attributes)
        started = time.perf_counter()
        with span:
            try:
                response = await self._breaker_guarded(call, once)
            except ConnectorError as exc:
                self._observe(action, started, exc)
                raise
        self._observe(action, started, None)
        return response

    def _observe(self, action: Action, started: float, error: ConnectorError | None) -> None:
        if self.observer is not None:
            elapsed = time.perf_counter() - started
            self.observer.call_finished(self.agency, action, elapsed, error)

    async def _breaker_guarded(
        self, call: Callable[[], Awaitable[R]], once: list[Callable[[], None]]
    ) -> R:
        breaker = await self.breakers.get_breaker(self.agency)
        try:
            async with breaker:
                return await self._capped(call, once)
        except OpenedState as exc:
            raise CircuitOpen(self.agency, "circuit breaker open") from exc

    async def _capped(self, call: Callable[[], Awaitable[R]], once: list[Callable[[], None]]) -> R:
        try:
            # Not wait_for: on Python 3.11 it wraps the acquire in a task of its own.
            # A free slot is taken at once: no timer to set and cancel then.
            async with asyncio.timeout(self._queue_wait if self._slots.locked() else None):
                await self._slots.acquire()
        except TimeoutError as exc:
            raise BackendBusy(self.agency, "concurrency cap reached") from exc
        started = time.perf_counter()
        try:
            if once:
                once.pop()()
            response = await call()
        except ConnectorError as exc:
            self.stats.record((time.perf_counter() - started) * 1000, exc)
            raise
        finally:
            self._slots.release()
        self.stats.record((time.perf_counter() - started) * 1000, None)
        return response

    async def aclose(self) -> None:
        await self.inner.aclose()


def breaker_factory(threshold: int, ttl: float) -> AsyncCircuitBreakerFactory:
    # A rejection is the agency working correctly; only transient faults
    # count towards opening the breaker.
    return AsyncCircuitBreakerFactory(
        default_threshold=threshold, default_ttl=ttl, exclude=[PermanentError, BackendBusy]
    )
