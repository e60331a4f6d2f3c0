"""What every resolver receives in ``info.context``."""

from __future__ import annotations

from dataclasses import dataclass, field

from auth.principal import Principal
from connectors.registry import ConnectorRegistry
from gateway.applications import ApplicationStore
from gateway.catalog.loader import Catalog
from gateway.events import ApplicationEvents, MemoryEvents
from schema.catalog_view import CatalogView


@dataclass(frozen=True, slots=True)
class Services:
    """Long-lived parts, built once at start-up."""

    catalog: Catalog
    store: ApplicationStore
    registry: ConnectorRegistry
    events: ApplicationEvents = field(default_factory=MemoryEvents)
    view: CatalogView = field(init=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "view", CatalogView(self.catalog))


@dataclass(slots=True)
class Context:
    """Mutable only so a WebSocket's principal can be set from its
    ``connection_init`` payload (strawberry makes one context per socket)."""

    principal: Principal
    services: Services
    connection_params: dict[str, object] | None = None
