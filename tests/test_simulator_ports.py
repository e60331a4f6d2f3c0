"""The test simulators start even when a port picked for them is taken meanwhile."""

from __future__ import annotations

import itertools
import socket
from pathlib import Path

import httpx
import pytest

import tests.support.simulators as support
from gateway.catalog.loader import Catalog
from tests.support.gateway import free_port


async def test_a_port_taken_before_binding_is_replaced(
    tmp_path: Path, catalog: Catalog, monkeypatch: pytest.MonkeyPatch
) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        held = taken.getsockname()[1]
        # Handed to the first simulator that listens on a port (SQL and FILE agencies do not).
        listening = next(i for i, a in enumerate(catalog.agencies)
                         if a.backend.kind.value in ("REST", "SOAP"))  # fmt: skip
        first = [free_port() for _ in range(listening)]
        picks = itertools.chain(first, [held], iter(free_port, None))
        monkeypatch.setattr(support, "free_port", lambda: next(picks))
        async with support.running_simulators(catalog, tmp_path) as (simulators, ports):
            assert held not in ports
            assert len(ports) == len(catalog.agencies) == len(simulators)
            rest = next(p for s, p in zip(simulators, ports, strict=True)
                        if s.agency.backend.kind.value == "REST")  # fmt: skip
            async with httpx.AsyncClient() as http:  # it answers on its port
                assert (await http.get(f"http://127.0.0.1:{rest}/")).status_code < 500
