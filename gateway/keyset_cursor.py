"""Opaque cursors for keyset pagination: a row's place in a newest-first list
as its time and its id (the tie-break when two rows share a time).

Clients keep cursors between requests, so the encoding must not change:
URL-safe base64 of ``<tag><ISO time>|<id>``. The tag tells one list's
cursors from another's.
"""

from __future__ import annotations

import base64
import datetime as dt

from gateway.clock import aware


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
