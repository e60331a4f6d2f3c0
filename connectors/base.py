"""The one interface every back-end kind implements.

Like an httpx transport: one async method and ``aclose``. A connector
speaks back-end field names only; the catalog-driven translation between
form/result field names and back-end names lives in ``connectors.mapping``.

A kind whose back end can answer several LOOKUPs in one call also
implements ``BatchingConnector.lookup_many``; the gateway then sends the
LOOKUPs that one GraphQL operation makes of such an agency as one call
(schema/lookup_batches.py).
"""

from __future__ import annotations

import abc
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from enum import StrEnum
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from connectors.errors import ConnectorError
    from gateway.catalog.model import Agency


class Action(StrEnum):
    LOOKUP = "LOOKUP"  # idempotent read, answered at once
    SUBMIT = "SUBMIT"  # file an application; carries an idempotency key
    STATUS = "STATUS"  # poll an application's state by the agency's reference


@dataclass(frozen=True, slots=True)
class BackendRequest:
    agency: str
    service_code: str
    operation: str
    action: Action
    payload: Mapping[str, Any] = field(default_factory=dict)
    """Back-end field name -> value (str, int, float, bool, datetime.date or None)."""
    idempotency_key: str | None = None
    """SUBMIT only: the back end files at most once per key."""
    reference: str | None = None
    """STATUS only: the agency's own reference for the application."""


@dataclass(frozen=True, slots=True)
class BackendResponse:
    data: Mapping[str, Any] = field(default_factory=dict)
    """LOOKUP: back-end field name -> value."""
    reference: str | None = None
    """SUBMIT and STATUS: the agency's own reference number."""
    status: str | None = None
    """SUBMIT and STATUS: one of the application statuses (DELIVERED, IN_REVIEW,
    NEEDS_INFO, APPROVED, REJECTED, ISSUED), as the agency reports it."""
    note: str | None = None
    """STATUS: the agency's reason or remark, e.g. why it rejected."""


class Connector(abc.ABC):
    """A client for one agency's back end."""

    @abc.abstractmethod
    async def send(self, request: BackendRequest) -> BackendResponse:
        """Send one request; raise a ``connectors.errors.ConnectorError`` on failure."""

    @classmethod
    def check_dialect(cls, agency: Agency) -> None:
        """Raise ``ValueError`` naming the problem if the agency's
        ``[backend.dialect]`` does not fit this kind (run by ``khaalga catalog check``)."""
        del agency

    async def aclose(self) -> None:  # noqa: B027 - optional for stateless connectors
        """Release connections, pools and files."""


class BatchingConnector(Connector):
    """A connector whose back end answers several LOOKUPs in one call."""

    @abc.abstractmethod
    async def lookup_many(
        self, requests: Sequence[BackendRequest]
    ) -> list[BackendResponse | ConnectorError]:
        """One answer per request, in order: a ``BackendResponse`` (status
        ``NOT_FOUND`` when there is no record) or the ``ConnectorError`` of
        that request alone (its value does not fit the column, its record is
        corrupt). Raise a ``ConnectorError`` when the call as a whole failed
        (the database is unreachable): that is one failed call to the agency."""
