"""The catalog's GraphQL objects, built once.

The catalog is immutable after start-up, so every Agency and Service object
is made once and shared by all requests instead of rebuilt per resolver.
"""

from __future__ import annotations

from gateway.catalog.loader import Catalog
from schema.types import Agency, Service


class CatalogView:
    def __init__(self, catalog: Catalog) -> None:
        self.services: dict[str, Service] = {s.code: Service.of(s) for s in catalog.services()}
        self.agencies: dict[str, Agency] = {
            a.code: Agency.of(a, [self.services[s.code] for s in a.services])
            for a in catalog.agencies
        }
        # Catalog order, for listings.
        self.service_list: list[Service] = list(self.services.values())
        self.agency_list: list[Agency] = list(self.agencies.values())
