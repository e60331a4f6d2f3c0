"""Load and check the catalog at start-up.

A broken file stops start-up with the file, the service code and the
problem, never a traceback: ``CatalogError`` carries one line per problem.
"""

from __future__ import annotations

import tomllib
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

from pydantic import ValidationError

from gateway.catalog.model import Agency, Service

# Root fields the schema defines by hand; a service may not take these names.
RESERVED_FIELDS = frozenset(
    {
        "agencies", "agency", "services", "service", "lookup", "submitApplication",
        "application", "myApplications", "cancelApplication", "agencyHealth", "me", "node",
    }
)  # fmt: skip


class CatalogError(Exception):
    def __init__(self, problems: list[str]) -> None:
        super().__init__("\n".join(problems))
        self.problems = problems


@dataclass(frozen=True)
class Catalog:
    agencies: tuple[Agency, ...]
    _services: dict[str, Service] = field(default_factory=dict, repr=False)
    _by_field: dict[str, Service] = field(default_factory=dict, repr=False)

    def __post_init__(self) -> None:
        for agency in self.agencies:
            for service in agency.services:
                self._services[service.code] = service
                self._by_field[service.graphql_field] = service

    def agency(self, code: str) -> Agency | None:
        return next((a for a in self.agencies if a.code == code), None)

    def service(self, code: str) -> Service | None:
        return self._services.get(code)

    def service_by_field(self, graphql_field: str) -> Service | None:
        """The service whose own typed root field is ``graphql_field``."""
        return self._by_field.get(graphql_field)

    def services(self) -> Iterator[Service]:
        for agency in self.agencies:
            yield from agency.services


def _describe(exc: ValidationError, data: dict[str, object]) -> list[str]:
    """One line per pydantic error, naming the service code when inside one."""
    services = data.get("services")
    lines = []
    for error in exc.errors():
        loc = list(error["loc"])
        where = ".".join(str(part) for part in loc)
        if len(loc) >= 2 and loc[0] == "services" and isinstance(loc[1], int):
            code = "?"
            if isinstance(services, list) and loc[1] < len(services):
                entry = services[loc[1]]
                if isinstance(entry, dict):
                    code = str(entry.get("code", "?"))
            where = f"service {code}: " + ".".join(str(p) for p in loc[2:])
        lines.append(f"{where}: {error['msg']}")
    return lines


def load_catalog(directory: Path) -> Catalog:
    problems: list[str] = []
    agencies: list[Agency] = []
    files = sorted(directory.glob("*.toml"))
    if not files:
        raise CatalogError([f"{directory}: no catalog files (*.toml)"])
    for path in files:
        try:
            data = tomllib.loads(path.read_text(encoding="utf-8"))
        except (OSError, UnicodeDecodeError, tomllib.TOMLDecodeError) as exc:
            problems.append(f"{path.name}: {exc}")
            continue
        try:
            agencies.append(Agency.model_validate(data))
        except ValidationError as exc:
            problems.extend(f"{path.name}: {line}" for line in _describe(exc, data))
    seen_codes: dict[str, str] = {}
    seen_fields: dict[str, str] = {}
    seen_agencies: set[str] = set()
    for agency in agencies:
        if agency.code in seen_agencies:
            problems.append(f"agency {agency.code} is defined twice")
        seen_agencies.add(agency.code)
        for service in agency.services:
            if service.code in seen_codes:
                problems.append(f"service {service.code}: code used twice")
            seen_codes[service.code] = agency.code
            name = service.graphql_field
            if name in RESERVED_FIELDS:
                problems.append(f"service {service.code}: graphql_field {name!r} is reserved")
            elif name in seen_fields:
                problems.append(
                    f"service {service.code}: graphql_field {name!r} "
                    f"already used by {seen_fields[name]}"
                )
            seen_fields[name] = service.code
    if problems:
        raise CatalogError(problems)
    return Catalog(tuple(agencies))
