"""Building the long-lived parts from settings, once, for both the server
(gateway/app.py) and ``khaalga worker`` so the two never drift apart."""

from __future__ import annotations

from collections.abc import Mapping

from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from connectors.base import Connector
from connectors.delivery import DeliveryWorker
from connectors.memory import sandbox_registry
from connectors.registry import ConnectorRegistry
from gateway.catalog.loader import Catalog
from gateway.events import ApplicationEvents
from gateway.settings import Settings


def build_registry(
    settings: Settings, catalog: Catalog, overrides: Mapping[str, Connector] | None = None
) -> ConnectorRegistry:
    return ConnectorRegistry(
        catalog,
        settings.backends,
        timeouts=settings.timeouts,
        concurrency=settings.agency_concurrency,
        breaker_threshold=settings.breaker_threshold,
        breaker_ttl=settings.breaker_ttl,
        overrides=overrides,
    )


def build_sandbox_registry(catalog: Catalog) -> ConnectorRegistry:
    """What sandbox apps reach instead of the agencies: in-memory, made-up
    answers, no endpoint settings at all, so it cannot point at a real one."""
    return sandbox_registry(catalog)


def build_worker(
    settings: Settings,
    sessions: async_sessionmaker[AsyncSession],
    catalog: Catalog,
    registry: ConnectorRegistry,
    events: ApplicationEvents,
    sandbox: ConnectorRegistry | None = None,
) -> DeliveryWorker:
    return DeliveryWorker(
        sessions,
        catalog,
        registry,
        max_attempts=settings.max_attempts,
        poll_interval=settings.delivery_poll,
        status_interval=settings.status_poll,
        lease_seconds=settings.lease_seconds,
        backoff_base=settings.delivery_backoff,
        events=events,  # with Redis, subscribers in every process hear this worker
        sandbox=sandbox if sandbox is not None else build_sandbox_registry(catalog),
    )
