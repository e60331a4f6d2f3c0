"""An in-memory fake back end for tests: behaves like an agency, no I/O."""

from __future__ import annotations

import itertools
from collections.abc import Callable

from connectors.base import Action, BackendRequest, BackendResponse, Connector
from connectors.errors import BackendRejected, ConnectorError


class MemoryConnector(Connector):
    def __init__(self, agency: str, answer: Callable[[BackendRequest], dict[str, object]]) -> None:
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
                return BackendResponse(data=self.answer(request))
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

    async def aclose(self) -> None:
        self.closed = True
