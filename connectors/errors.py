"""Errors raised by connectors. Every upstream library's exception (aiohttp
in ``connectors/wire.py``, zeep, SQLAlchemy, OS file errors) is mapped to one
of these at the connector boundary and chained with ``raise ... from``.

    ConnectorError                  any back-end failure
    ├── TransientError              worth retrying later (delivery retries with backoff)
    │   ├── BackendTimeout          connect, read or overall timeout
    │   ├── BackendUnavailable      refused, reset, 5xx, database locked
    │   │   ├── CircuitOpen         the agency's breaker is open; nothing was sent
    │   │   └── NotConfigured       no endpoint for the agency; nothing was sent
    │   └── BackendBusy             the agency's concurrency cap is full; nothing was sent

``sent`` says whether the request may have reached the back end: False only
for the refusals above, made by the gateway before sending. Every other
failure counts as sent (a timeout or a 5xx may come after the agency took
the data), because the data-access log records each delivery attempt that
may have handed a citizen's form over.
    └── PermanentError              retrying cannot help (delivery dead-letters it)
        ├── BackendRejected         the agency refused the request (fault, 4xx, rule)
        ├── ProtocolError           garbage body, malformed XML, bad file record
        └── MappingError            catalog mapping does not fit the request/response
"""

from __future__ import annotations

from typing import ClassVar


class ConnectorError(Exception):
    """Base of every connector failure. ``agency`` names the back end."""

    sent: ClassVar[bool] = True

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
    sent = False


class NotConfigured(BackendUnavailable):
    sent = False


class BackendBusy(TransientError):
    sent = False


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
