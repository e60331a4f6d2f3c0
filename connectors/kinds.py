"""Which connector class speaks each back-end kind."""

from __future__ import annotations

import importlib

from connectors.base import Connector
from gateway.catalog.model import Agency, BackendKind

_CLASSES = {
    BackendKind.SOAP: "connectors.soap:SoapConnector",
    BackendKind.REST: "connectors.rest:RestConnector",
    BackendKind.SQL: "connectors.sql:SqlConnector",
    BackendKind.FILE: "connectors.files:FileConnector",
}


def dialect_problems(agency: Agency) -> list[str]:
    """What is wrong with an agency's ``[backend.dialect]`` for its kind."""
    try:
        connector_class(agency.backend.kind).check_dialect(agency)
    except ValueError as exc:
        return [f"agency {agency.code}: backend.dialect: {exc}"]
    return []


def connector_class(kind: BackendKind) -> type[Connector]:
    module, _, name = _CLASSES[kind].partition(":")
    cls: type[Connector] = getattr(importlib.import_module(module), name)
    return cls
