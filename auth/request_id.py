"""The request id of the request being served, for the data-access log.

Set by the authentication middleware; a context variable rather than a
GraphQL context field, so the code recording an access (deep in shared
operations) needs no extra parameter threaded through every caller.
"""

from __future__ import annotations

import re
import uuid
from contextvars import ContextVar

REQUEST_ID: ContextVar[str | None] = ContextVar("khaalga_request_id", default=None)
_SAFE = re.compile(r"^[A-Za-z0-9._:-]{1,128}$")


def choose(outer: object, header: str | None) -> str:
    """The id an outer middleware put in ``scope["request_id"]``, else the
    client's X-Request-ID when it is a plain token, else a new one."""
    if isinstance(outer, str) and _SAFE.match(outer):
        return outer
    value = header
    if value and _SAFE.match(value):
        return value
    return uuid.uuid4().hex
