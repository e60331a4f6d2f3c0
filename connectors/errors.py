"""Errors raised by connectors. Every upstream library's exception (httpx,
zeep, SQLAlchemy, OS file errors) is mapped to one of these at the
connector boundary and chained with ``raise ... from``.

    ConnectorError                  any back-end failure
    ├── TransientError              worth retrying later (delivery retries with backoff)
    │   ├── BackendTimeout          connect, read or overall timeout
    │   ├── BackendUnavailable      refused, reset, 5xx, database locked
    │   │   └── CircuitOpen         the agency's breaker is open; nothing was sent
    │   └── BackendBusy             the agency's concurrency cap is full
    └── PermanentError              retrying cannot help (delivery dead-letters it)
        ├── BackendRejected         the agency refused the request (fault, 4xx, rule)
        ├── ProtocolError           garbage body, malformed XML, bad file record
        └── MappingError            catalog mapping does not fit the request/response
"""

from __future__ import annotations


class ConnectorError(Exception):
    """Base of every connector failure. ``agency`` names the back end."""

    def __init__(self, agency: str, message: str) -> None:
        super().__init__(f"{agency}: {message}")
        self.agency = agency
        self.message = message


class TransientError(ConnectorError):
    pass


class BackendTimeout(TransientError):
    pass


class BackendUnavailable(TransientError):
    pass


class CircuitOpen(BackendUnavailable):
    pass


class BackendBusy(TransientError):
    pass


class PermanentError(ConnectorError):
    pass


class BackendRejected(PermanentError):
    pass


class ProtocolError(PermanentError):
    pass


class MappingError(PermanentError):
    """A catalog mapping does not fit; names the service and the field."""

    def __init__(self, agency: str, service_code: str, field: str, message: str) -> None:
        super().__init__(agency, f"{service_code}.{field}: {message}")
        self.service_code = service_code
        self.field = field
