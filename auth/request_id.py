"""The request id of the request being served, for the data-access log.

Set by the authentication middleware; a context variable rather than a
GraphQL context field, so the code recording an access (deep in shared
operations) needs no extra parameter threaded through every caller.
"""

from __future__ import annotations

from contextvars import ContextVar

from gateway.observability.request import acceptable_request_id, new_request_id

REQUEST_ID: ContextVar[str | None] = ContextVar("khaalga_request_id", default=None)


def choose(outer: object, header: str | None) -> str:
    """The id an outer middleware put in ``scope["request_id"]``, else the
    client's X-Request-ID when it is a plain token, else a new one."""
    if isinstance(outer, str) and acceptable_request_id(outer):
        return outer
    if header and acceptable_request_id(header):
        return header
    return new_request_id()
