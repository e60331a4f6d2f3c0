"""Where each simulated agency lives on the embedded default.

Deterministic, so the gateway can compute the endpoints without asking the
simulator process: agency N (in catalog order) listens on base_port + N and
keeps its state in ``<workdir>/<agency code lowercase>``. Tests pass their
own free ports instead.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from connectors.config import BackendEndpoint
from gateway.catalog.loader import Catalog
from gateway.catalog.model import Agency
from legacy.base import Simulator
from legacy.kinds import simulator_class

DEFAULT_BASE_PORT = 8101


def _layout(
    catalog: Catalog, workdir: Path, ports: Sequence[int]
) -> list[tuple[Agency, int, Path]]:
    if len(ports) != len(catalog.agencies):
        raise ValueError("one port per agency is needed")
    return [
        (agency, port, workdir / agency.code.lower())
        for agency, port in zip(catalog.agencies, ports, strict=True)
    ]


def default_ports(catalog: Catalog, base_port: int = DEFAULT_BASE_PORT) -> list[int]:
    return [base_port + index for index in range(len(catalog.agencies))]


def embedded_endpoints(
    catalog: Catalog, workdir: Path, ports: Sequence[int]
) -> dict[str, BackendEndpoint]:
    return {
        agency.code: simulator_class(agency.backend.kind).endpoint_for(agency, folder, port)
        for agency, port, folder in _layout(catalog, workdir, ports)
    }


def build_simulators(
    catalog: Catalog, workdir: Path, ports: Sequence[int], review_seconds: float = 3.0
) -> list[Simulator]:
    return [
        simulator_class(agency.backend.kind)(agency, folder, port, review_seconds)
        for agency, port, folder in _layout(catalog, workdir, ports)
    ]
