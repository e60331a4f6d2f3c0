"""spyne, imported without tripping ``filterwarnings = error``.

spyne 2.14 vendors six 1.14, whose meta-path importer predates PEP 451, and
imports the deprecated ``cgi`` module. Both only warn on Python 3.11. The
importer stays on ``sys.meta_path`` for the life of the process, so every
later failed import anywhere (``try: import x`` probes) would warn too; we
give it the PEP 451 methods six 1.16 added instead of silencing warnings
globally.
"""

from __future__ import annotations

import warnings
from importlib.machinery import ModuleSpec
from importlib.util import spec_from_loader
from types import ModuleType
from typing import Any

with warnings.catch_warnings():
    warnings.simplefilter("ignore", ImportWarning)
    warnings.filterwarnings("ignore", r"'cgi' is deprecated", DeprecationWarning)
    from spyne import (
        Application,
        Boolean,
        ComplexModel,
        Date,
        Decimal,
        Fault,
        Integer,
        ServiceBase,
        Unicode,
        XmlData,
        rpc,
    )
    from spyne.protocol.soap import Soap11
    from spyne.server.wsgi import WsgiApplication
    from spyne.util import appreg as _appreg
    from spyne.util import six as _six


def forget(app: Any) -> None:
    """Drop ``app`` from spyne's process-wide registry (it keeps every app alive
    and warns when a restarted simulator registers the same name again)."""
    key = (app.tns, app.name)
    entry = _appreg.applications.get(key)
    if entry is not None and entry.app is app:
        del _appreg.applications[key]


def _find_spec(self: Any, fullname: str, path: Any = None, target: Any = None) -> Any:
    if fullname in self.known_modules:
        return spec_from_loader(fullname, self)
    return None


def _create_module(self: Any, spec: ModuleSpec) -> ModuleType:
    module: ModuleType = self.load_module(spec.name)
    return module


def _exec_module(self: Any, module: ModuleType) -> None:
    pass  # load_module in create_module already did the work


_importer = _six._SixMetaPathImporter
if not hasattr(_importer, "find_spec"):
    _importer.find_spec = _find_spec
    _importer.create_module = _create_module
    _importer.exec_module = _exec_module

__all__ = [
    "Application",
    "Boolean",
    "ComplexModel",
    "Date",
    "Decimal",
    "Fault",
    "Integer",
    "ServiceBase",
    "Soap11",
    "Unicode",
    "WsgiApplication",
    "XmlData",
    "forget",
    "rpc",
]
