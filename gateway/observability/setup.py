"""Wiring observability into one app, so ``gateway/app.py`` needs four lines."""

from __future__ import annotations

from collections.abc import Collection
from dataclasses import dataclass

import strawberry
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker
from starlette.middleware import Middleware
from starlette.routing import Route
from strawberry.extensions import SchemaExtension
from strawberry.schema.base import BaseSchema

from connectors.registry import ConnectorRegistry
from gateway.observability.logs import configure_logging
from gateway.observability.metrics import GatewayMetrics, metrics_endpoint
from gateway.observability.middleware import ObservabilityMiddleware, RequestRecorder
from gateway.observability.operations import OperationObserver
from gateway.observability.redaction import install_redaction
from gateway.observability.tracing import ResolverTracing, setup_tracing
from gateway.settings import Settings


@dataclass(frozen=True)
class Observability:
    metrics: GatewayMetrics
    registry: ConnectorRegistry
    tracing: bool

    @classmethod
    def build(cls, settings: Settings, registry: ConnectorRegistry) -> Observability:
        install_redaction()
        if settings.log_format == "json":
            configure_logging()
        tracing = setup_tracing(settings.otel_exporter)
        metrics = GatewayMetrics([agency.code for agency in registry.catalog.agencies])
        for agency in metrics.agencies:
            registry.connector(agency).observer = metrics
            registry.connector(agency).traced = tracing
        return cls(metrics, registry, tracing)

    def instrument(self, schema: BaseSchema) -> None:
        """Add our extensions to a built schema (after any it already has)."""
        assert isinstance(schema, strawberry.Schema)
        ours: list[type[SchemaExtension]] = [OperationObserver]
        if self.tracing:
            ours.append(ResolverTracing)
        schema.extensions = (*schema.extensions, *ours)

    def route(self, sessions: async_sessionmaker[AsyncSession]) -> Route:
        return Route("/metrics", metrics_endpoint(self.metrics, self.registry, sessions))

    def recorder(self, paths: Collection[str]) -> RequestRecorder:
        """For the middleware and the fast path in front of the app (``paths``: those recorded)."""
        return RequestRecorder(self.metrics, paths)

    def middleware(self, recorder: RequestRecorder) -> Middleware:
        """Outermost, so it times and logs requests that auth or limits refuse."""
        return Middleware(ObservabilityMiddleware, recorder=recorder, tracing=self.tracing)
