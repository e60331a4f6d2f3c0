"""In-memory back ends, no I/O: a fake agency for tests (``MemoryConnector``)
and the sandbox every sandbox app reaches instead of the agencies
(``SandboxConnector``, ``sandbox_registry``)."""

from __future__ import annotations

import datetime as dt
import hashlib
import itertools
from collections.abc import Callable, Sequence
from typing import Any

from connectors.base import Action, BackendRequest, BackendResponse, BatchingConnector, Connector
from connectors.errors import BackendRejected, ConnectorError
from connectors.registry import ConnectorRegistry
from gateway.catalog.loader import Catalog
from gateway.catalog.model import FieldType


class MemoryConnector(Connector):
    """``answer`` gives a LOOKUP's record, or None: there is none."""

    def __init__(
        self, agency: str, answer: Callable[[BackendRequest], dict[str, object] | None]
    ) -> None:
        self.agency = agency
        self.answer = answer
        self.filed: dict[str, str] = {}  # idempotency key -> reference
        self.statuses: dict[str, tuple[str, str | None]] = {}
        self.fail_with: ConnectorError | None = None
        self.calls: list[BackendRequest] = []
        self._numbers = itertools.count(1)
        self.closed = False

    async def send(self, request: BackendRequest) -> BackendResponse:
        self.calls.append(request)
        if self.fail_with is not None:
            raise self.fail_with
        match request.action:
            case Action.LOOKUP:
                return self._looked_up(request)
            case Action.SUBMIT:
                assert request.idempotency_key is not None
                reference = self.filed.get(request.idempotency_key)
                if reference is None:
                    reference = f"{self.agency}-MEM-{next(self._numbers):06d}"
                    self.filed[request.idempotency_key] = reference
                    self.statuses[reference] = ("DELIVERED", None)
                return BackendResponse(reference=reference, status="DELIVERED")
            case Action.STATUS:
                state = self.statuses.get(request.reference or "")
                if state is None:
                    raise BackendRejected(self.agency, "unknown reference")
                return BackendResponse(reference=request.reference, status=state[0], note=state[1])
        raise AssertionError(request.action)

    def _looked_up(self, request: BackendRequest) -> BackendResponse:
        record = self.answer(request)
        return (
            BackendResponse(status="NOT_FOUND") if record is None else BackendResponse(data=record)
        )

    async def aclose(self) -> None:
        self.closed = True


class BatchingMemoryConnector(MemoryConnector, BatchingConnector):
    """A fake agency that answers several LOOKUPs in one call, as a SQL one
    does; ``batches`` holds each call's requests."""

    def __init__(
        self, agency: str, answer: Callable[[BackendRequest], dict[str, object] | None]
    ) -> None:
        super().__init__(agency, answer)
        self.batches: list[list[BackendRequest]] = []

    async def lookup_many(
        self, requests: Sequence[BackendRequest]
    ) -> list[BackendResponse | ConnectorError]:
        self.batches.append(list(requests))
        if self.fail_with is not None:
            raise self.fail_with
        return [self._looked_up(request) for request in requests]


SANDBOX_REFERENCE_PREFIX = "SANDBOX"


def made_up(field_type: FieldType, seed: str) -> Any:
    """A plausible value of ``field_type`` that is nobody's: derived from a
    hash of ``seed``, so the same question always gets the same answer."""
    n = int.from_bytes(hashlib.sha256(seed.encode()).digest()[:4], "big")
    match field_type:
        case FieldType.NUMBER:
            return n % 1000
        case FieldType.AMOUNT:
            return n % 5_000_000 + 1000
        case FieldType.DATE:
            return dt.date(2020, 1, 1) + dt.timedelta(days=n % 2000)
        case FieldType.BOOLEAN:
            return bool(n % 2)
        case FieldType.PHONE:
            # Eight digits like a phone number, but no subscriber number
            # starts with 0 (the trunk prefix): it cannot be anyone's.
            return f"0{n % 10_000_000:07d}"
        case FieldType.REGISTER_NUMBER:
            # Birth month 00 never passes validation, so never a real person.
            return f"ЖШ{n % 100:02d}00{n % 10_000:04d}"
        case FieldType.EMAIL:
            return f"sandbox{n % 10_000}@example.mn"
        case FieldType.COMPANY_NUMBER:
            return f"{n % 10_000_000:07d}"
        case FieldType.PARCEL_NUMBER:
            return f"18{n % 1_000_000_000:09d}"
        case FieldType.PLATE_NUMBER:
            return f"{n % 10_000:04d}ЖШЖ"
        case _:
            return f"Туршилтын утга / Sandbox value {n % 1000}"


class SandboxConnector(Connector):
    """A sandbox app's agency, standing in for the real back end.

    LOOKUPs are answered with made-up values shaped by the service's result
    fields; SUBMITs are "filed" under a reference derived from the
    idempotency key, so a retry, a restart or another worker process gets
    the same one; STATUS stays DELIVERED. Nothing is remembered: it serves
    a long-running gateway, where anything kept per request would only grow
    (``requests`` is a bare count, for tests and curiosity)."""

    def __init__(self, agency: str, catalog: Catalog) -> None:
        self.agency = agency
        self.catalog = catalog
        self.requests = 0

    async def send(self, request: BackendRequest) -> BackendResponse:
        self.requests += 1
        match request.action:
            case Action.LOOKUP:
                service = self.catalog.service(request.service_code)
                if service is None:
                    raise BackendRejected(self.agency, "unknown service")
                seed = f"{request.service_code}|{sorted(request.payload.items())!r}|"
                data = {
                    service.binding.response[f.name]: made_up(f.type, seed + f.name)
                    for f in service.result
                }
                return BackendResponse(data=data)
            case Action.SUBMIT:
                assert request.idempotency_key is not None
                digest = hashlib.sha256(request.idempotency_key.encode()).hexdigest()[:12]
                reference = f"{SANDBOX_REFERENCE_PREFIX}-{self.agency}-{digest.upper()}"
                return BackendResponse(reference=reference, status="DELIVERED")
            case Action.STATUS:
                return BackendResponse(reference=request.reference, status="DELIVERED")
        raise AssertionError(request.action)


def sandbox_registry(catalog: Catalog) -> ConnectorRegistry:
    """Every agency of ``catalog`` as a ``SandboxConnector``: what sandbox apps
    reach instead of the agencies. Its breakers and figures are its own, so
    sandbox traffic never opens a real agency's breaker or shows in its health."""
    connectors = {a.code: SandboxConnector(a.code, catalog) for a in catalog.agencies}
    return ConnectorRegistry(catalog, {}, overrides=connectors)
