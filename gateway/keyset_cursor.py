"""Opaque cursors for keyset pagination: a row's place in a newest-first list
as its time and its id (the tie-break when two rows share a time), and the
query for the page after such a place.

Clients keep cursors between requests, so the encoding must not change:
URL-safe base64 of ``<tag><ISO time>|<id>``. The tag tells one list's
cursors from another's.
"""

from __future__ import annotations

import base64
import datetime as dt
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Generic, TypeVar

from sqlalchemy import Select, and_, or_
from sqlalchemy.orm import QueryableAttribute

from gateway.clock import aware

S = TypeVar("S", bound=Select[Any])
T = TypeVar("T")


@dataclass(frozen=True, slots=True)
class Page(Generic[T]):
    items: Sequence[T]
    total: int
    has_next: bool

    @classmethod
    def of(cls, rows: Sequence[T], first: int, total: int) -> Page[T]:
        """From the rows ``page`` fetched: one more than ``first`` means a next page."""
        return cls(rows[:first], total, len(rows) > first)


def encode(at: dt.datetime, key: str, *, tag: str = "") -> str:
    raw = f"{tag}{aware(at).isoformat()}|{key}"
    return base64.urlsafe_b64encode(raw.encode()).decode()


def decode(cursor: str, *, tag: str = "") -> tuple[dt.datetime, str] | None:
    """``(time, id)``, or ``None`` when the cursor is not one ``encode`` made with ``tag``."""
    try:
        raw = base64.urlsafe_b64decode(cursor.encode()).decode()
        at, _, key = raw.removeprefix(tag).partition("|")
        if not raw.startswith(tag) or not key:
            return None
        return dt.datetime.fromisoformat(at), key
    except (ValueError, UnicodeDecodeError):
        return None


def page(
    query: S,
    at: QueryableAttribute[dt.datetime],
    key: QueryableAttribute[str],
    after: tuple[dt.datetime, str] | None,
    first: int,
) -> S:
    """``query``'s rows newest first, from just past ``after``: one more row
    than ``first``, which tells the caller whether a next page exists."""
    if after is not None:
        last_at, last_key = after
        query = query.where(or_(at < last_at, and_(at == last_at, key < last_key)))
    return query.order_by(at.desc(), key.desc()).limit(first + 1)
