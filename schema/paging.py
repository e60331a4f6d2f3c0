"""Paging arguments, checked the same way on every list: a client that
sends a page size or a cursor out of bounds gets BAD_USER_INPUT naming the
argument, never a silently different page."""

from __future__ import annotations

from collections.abc import Callable
from typing import TypeVar

from gateway.catalog.model import Text
from schema import errors

P = TypeVar("P")
MAX_PAGE = 500
BAD_FIRST = Text(mn=f"0-{MAX_PAGE} хооронд байна", en=f"Must be between 0 and {MAX_PAGE}")
BAD_CURSOR = Text(mn="Хуудасны заагч буруу", en="The cursor is not valid")


def page_size(first: int | None, default: int) -> int:
    """``first``, or ``default`` when it is not given."""
    if first is None:
        return default
    if first < 0 or first > MAX_PAGE:
        raise errors.bad_user_input({"first": BAD_FIRST})
    return first


def position(after: str | None, decode: Callable[[str], P | None]) -> P | None:
    """Where the page starts: ``None`` for the first page. ``decode`` gives
    ``None`` for a cursor that is not its list's; starting over from the
    first page instead would hand the client rows it already has."""
    if after is None:
        return None
    found = decode(after)
    if found is None:
        raise errors.bad_user_input({"after": BAD_CURSOR})
    return found
