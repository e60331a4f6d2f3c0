"""Which simulator class plays each back-end kind."""

from __future__ import annotations

import importlib

from gateway.catalog.model import BackendKind
from legacy.base import Simulator

_CLASSES = {
    BackendKind.SOAP: "legacy.soap:SoapSimulator",
    BackendKind.REST: "legacy.rest:RestSimulator",
    BackendKind.SQL: "legacy.sql:SqlSimulator",
    BackendKind.FILE: "legacy.files:FileSimulator",
}


def simulator_class(kind: BackendKind) -> type[Simulator]:
    module, _, name = _CLASSES[kind].partition(":")
    cls: type[Simulator] = getattr(importlib.import_module(module), name)
    return cls
