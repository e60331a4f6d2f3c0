"""One resilient connector per agency, built from catalog + deployment config."""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from connectors.base import Action, BackendRequest, BackendResponse, Connector
from connectors.config import BackendEndpoint, Timeouts
from connectors.errors import BackendRejected, ConnectorError, NotConfigured
from connectors.kinds import connector_class
from connectors.mapping import from_backend, to_backend
from connectors.resilience import ResilientConnector, breaker_factory
from gateway.catalog.loader import Catalog
from gateway.catalog.model import Service

DEFAULT_TIMEOUTS = Timeouts()


class RecordNotFound(Exception):
    """The agency has no record matching a LOOKUP."""


def _lookup_request(service: Service, form: Mapping[str, Any]) -> BackendRequest:
    return BackendRequest(
        agency=service.agency_code,
        service_code=service.code,
        operation=service.binding.operation,
        action=Action.LOOKUP,
        payload=to_backend(service, form),
    )


class _Unconfigured(Connector):
    def __init__(self, agency: str) -> None:
        self.agency = agency

    async def send(self, request: BackendRequest) -> BackendResponse:
        raise NotConfigured(self.agency, "no back-end endpoint configured")


@dataclass(frozen=True, slots=True)
class HealthReport:
    agency: str
    backend_kind: str
    status: str  # UP DEGRADED DOWN
    breaker_state: str  # CLOSED OPEN HALF_OPEN
    last_error: str | None
    latency_p50_ms: float | None
    latency_p95_ms: float | None


class ConnectorRegistry:
    def __init__(
        self,
        catalog: Catalog,
        endpoints: Mapping[str, BackendEndpoint],
        *,
        timeouts: Timeouts = DEFAULT_TIMEOUTS,
        concurrency: int = 20,
        breaker_threshold: int = 5,
        breaker_ttl: float = 30.0,
        overrides: Mapping[str, Connector] | None = None,
    ) -> None:
        self.catalog = catalog
        self._agencies = {agency.code: agency for agency in catalog.agencies}
        breakers = breaker_factory(breaker_threshold, breaker_ttl)
        self._connectors: dict[str, ResilientConnector] = {}
        for agency in catalog.agencies:
            inner: Connector
            if overrides and agency.code in overrides:
                inner = overrides[agency.code]
            elif agency.code in endpoints:
                cls = connector_class(agency.backend.kind)
                inner = cls(agency, endpoints[agency.code], timeouts)  # type: ignore[call-arg]
            else:
                inner = _Unconfigured(agency.code)
            self._connectors[agency.code] = ResilientConnector(
                inner, agency.code, breakers, concurrency=concurrency
            )

    def connector(self, agency: str) -> ResilientConnector:
        return self._connectors[agency]

    def batches(self, agency: str) -> bool:
        """Whether the agency's back end answers several LOOKUPs in one call."""
        return self._connectors[agency].batches

    async def lookup(
        self,
        service: Service,
        form: Mapping[str, Any],
        *,
        sending: Callable[[], None] | None = None,
    ) -> dict[str, Any]:
        """``sending``: called as the request goes to the agency (``ResilientConnector.send``)."""
        agency = self._agencies[service.agency_code]
        request = _lookup_request(service, form)
        response = await self.connector(agency.code).send(request, sending=sending)
        if response.status == "NOT_FOUND":
            raise RecordNotFound(service.code)
        return from_backend(agency, service, response.data)

    async def lookup_many(
        self,
        lookups: Sequence[tuple[Service, Mapping[str, Any]]],
        *,
        sending: Callable[[], None] | None = None,
    ) -> list[dict[str, Any] | RecordNotFound | ConnectorError]:
        """LOOKUPs of one agency that ``batches``, as one call: each one's
        answer, or its own ``RecordNotFound`` or ``ConnectorError``, in
        order. Raises ``ConnectorError`` if the call as a whole failed."""
        agency = self._agencies[lookups[0][0].agency_code]
        requests = [_lookup_request(service, form) for service, form in lookups]
        responses = await self.connector(agency.code).send_many(requests, sending=sending)
        answers: list[dict[str, Any] | RecordNotFound | ConnectorError] = []
        for (service, _), response in zip(lookups, responses, strict=True):
            if isinstance(response, ConnectorError):
                answers.append(response)
            elif response.status == "NOT_FOUND":
                answers.append(RecordNotFound(service.code))
            else:
                try:
                    answers.append(from_backend(agency, service, response.data))
                except ConnectorError as exc:
                    answers.append(exc)
        return answers

    async def submit(
        self, service: Service, form: Mapping[str, Any], idempotency_key: str
    ) -> BackendResponse:
        request = BackendRequest(
            agency=service.agency_code,
            service_code=service.code,
            operation=service.binding.operation,
            action=Action.SUBMIT,
            payload=to_backend(service, form),
            idempotency_key=idempotency_key,
        )
        response = await self.connector(service.agency_code).send(request)
        if not response.reference:
            raise BackendRejected(service.agency_code, "no reference in the agency's answer")
        return response

    async def status(self, service: Service, reference: str) -> BackendResponse:
        request = BackendRequest(
            agency=service.agency_code,
            service_code=service.code,
            operation=service.binding.operation,
            action=Action.STATUS,
            reference=reference,
        )
        return await self.connector(service.agency_code).send(request)

    async def health(self) -> list[HealthReport]:
        reports = []
        for agency in self.catalog.agencies:
            connector = self._connectors[agency.code]
            breaker = await connector.breaker_state()
            stats = connector.stats
            if breaker == "OPEN" or isinstance(connector.inner, _Unconfigured):
                status = "DOWN"
            elif breaker == "HALF_OPEN" or stats.recent_failures:
                status = "DEGRADED"
            else:
                status = "UP"
            reports.append(
                HealthReport(
                    agency=agency.code,
                    backend_kind=agency.backend.kind.value,
                    status=status,
                    breaker_state=breaker,
                    last_error=stats.last_error,
                    latency_p50_ms=stats.percentile(50),
                    latency_p95_ms=stats.percentile(95),
                )
            )
        return reports

    async def aclose(self) -> None:
        for connector in self._connectors.values():
            await connector.aclose()
