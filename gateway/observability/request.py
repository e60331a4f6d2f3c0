"""What one request is known to be, filled in as it travels inwards.

The ASGI middleware creates a ``RequestInfo`` and puts it in a context
variable; the strawberry extension fills in the operation and outcome. It is
a mutable holder rather than values set in the variable so that code running
in a copied context (a task strawberry starts) still writes to the same object.
"""

from __future__ import annotations

import contextvars
import random
import re
from dataclasses import dataclass

ANONYMOUS_OPERATION = "anonymous"
UNKNOWN_OPERATION = "unknown"

# GraphQL's own Name grammar, shortened. Four digits in a row is refused as
# well: a client could name an operation after a register number
# (``query UB99010112``), and that must not become a label or a log field.
_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]{0,63}")
_DIGIT_RUN = re.compile(r"[0-9]{4}")
# A request id from a client is echoed and logged, so it is held to a plain
# token of bounded length; anything else is replaced by one of ours.
_REQUEST_ID = re.compile(r"[A-Za-z0-9._:-]{1,128}")


def operation_label(name: str | None) -> str:
    """A client's operation name if it is safe to record, else a fixed group name."""
    if name is None:
        return ANONYMOUS_OPERATION
    if not _NAME.fullmatch(name) or _DIGIT_RUN.search(name):
        return UNKNOWN_OPERATION
    return name


def acceptable_request_id(value: str) -> bool:
    return _REQUEST_ID.fullmatch(value) is not None


def new_request_id() -> str:
    """32 hex digits, like a uuid4's. An id names a request in the logs and
    the data-access log; it is no secret (clients may send their own), so it
    comes from ``random`` (seeded from the OS, and seeded again in a forked
    child) rather than ``secrets``, which made a ``getrandom`` system call
    for every request."""
    return f"{random.getrandbits(128):032x}"


@dataclass(slots=True)
class RequestInfo:
    request_id: str
    operation: str = UNKNOWN_OPERATION
    operation_type: str = "none"  # query mutation subscription none
    outcome: str = "none"  # see ``operations.outcome_of``; "none" when no GraphQL ran


_current: contextvars.ContextVar[RequestInfo | None] = contextvars.ContextVar(
    "khaalga_request", default=None
)


def current() -> RequestInfo | None:
    return _current.get()


def begin(info: RequestInfo) -> contextvars.Token[RequestInfo | None]:
    return _current.set(info)


def end(token: contextvars.Token[RequestInfo | None]) -> None:
    _current.reset(token)
