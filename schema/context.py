"""What every resolver receives in ``info.context``."""

from __future__ import annotations

from dataclasses import dataclass, field

from auth.principal import Principal
from connectors.registry import ConnectorRegistry
from gateway.applications import ApplicationStore
from gateway.catalog.loader import Catalog
from schema.catalog_view import CatalogView


@dataclass(frozen=True, slots=True)
class Services:
    """Long-lived parts, built once at start-up."""

    catalog: Catalog
    store: ApplicationStore
    registry: ConnectorRegistry
    view: CatalogView = field(init=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "view", CatalogView(self.catalog))


@dataclass(frozen=True, slots=True)
class Context:
    principal: Principal
    services: Services
