"""What every resolver receives in ``info.context``."""

from __future__ import annotations

from dataclasses import dataclass, field

from auth.apps.store import AppStore
from auth.audit.record import AccessLog
from auth.principal import Principal
from connectors.memory import sandbox_registry
from connectors.registry import ConnectorRegistry
from gateway.applications import ApplicationStore
from gateway.catalog.loader import Catalog
from gateway.events import ApplicationEvents, MemoryEvents
from schema.catalog_view import CatalogView
from schema.limits.cost import CostBudget
from schema.lookup_batches import LookupBatches


@dataclass(frozen=True, slots=True)
class Services:
    """Long-lived parts, built once at start-up."""

    catalog: Catalog
    store: ApplicationStore
    registry: ConnectorRegistry
    events: ApplicationEvents = field(default_factory=MemoryEvents)
    # What sandbox apps reach instead of ``registry``; built from the catalog
    # when not given, so a sandbox call can never fall back to the real one.
    sandbox: ConnectorRegistry | None = None
    apps: AppStore | None = None  # the developer program's apps (schema/apps.py)
    view: CatalogView = field(init=False)
    access_log: AccessLog = field(init=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "view", CatalogView(self.catalog))
        object.__setattr__(self, "access_log", AccessLog(self.store.sessions))
        if self.sandbox is None:
            object.__setattr__(self, "sandbox", sandbox_registry(self.catalog))

    def registry_for(self, principal: Principal) -> ConnectorRegistry:
        """The agencies this principal's calls reach: the sandbox for a sandbox app."""
        if principal.sandbox:
            assert self.sandbox is not None
            return self.sandbox
        return self.registry


@dataclass(slots=True)
class Context:
    """Mutable only so a WebSocket's principal can be set from its
    ``connection_init`` payload (strawberry makes one context per socket)."""

    principal: Principal
    services: Services
    connection_params: dict[str, object] | None = None
    # The HTTP request's rate-limit budget, charged with the operation's cost
    # (schema/limits/cost.py); None where nothing is limited.
    budget: CostBudget | None = None
    _lookup_batches: LookupBatches | None = field(default=None, init=False, repr=False)

    def lookup_batches(self) -> LookupBatches:
        """Made at the first lookup of an agency that batches."""
        if self._lookup_batches is None:
            self._lookup_batches = LookupBatches(self.services.access_log)
        return self._lookup_batches
