"""What every resolver receives in ``info.context``."""

from __future__ import annotations

from dataclasses import dataclass

from auth.principal import Principal
from connectors.registry import ConnectorRegistry
from gateway.applications import ApplicationStore
from gateway.catalog.loader import Catalog


@dataclass(frozen=True, slots=True)
class Services:
    """Long-lived parts, built once at start-up."""

    catalog: Catalog
    store: ApplicationStore
    registry: ConnectorRegistry


@dataclass(frozen=True, slots=True)
class Context:
    principal: Principal
    services: Services
