"""How a simulated agency moves an application through review over time.

Deterministic in the idempotency key, so tests can predict outcomes: about
one application in eight is rejected with a reason, one in eight needs more
information first. ``review_seconds`` is the length of one review step
(seconds on the embedded default, days in real life).
"""

from __future__ import annotations

import hashlib

REJECTION_REASONS = (
    "Бүрдүүлбэр дутуу / Required documents are incomplete",
    "Хугацаа хэтэрсэн / The request is past its deadline",
    "Шаардлага хангахгүй / The request does not meet the eligibility rules",
)


def _bucket(key: str) -> int:
    return hashlib.sha256(key.encode()).digest()[0] % 8


def review_state(key: str, elapsed: float, review_seconds: float) -> tuple[str, str | None]:
    """(status, note) of an application filed ``elapsed`` seconds ago."""
    step = int(elapsed / review_seconds) if review_seconds > 0 else 3
    bucket = _bucket(key)
    if step < 1:
        return "DELIVERED", None
    if step < 2:
        return "IN_REVIEW", None
    if bucket == 0:
        reason = REJECTION_REASONS[hashlib.sha256(key.encode()).digest()[1] % 3]
        return "REJECTED", reason
    if bucket == 1 and step < 3:
        return "NEEDS_INFO", "Нэмэлт мэдээлэл хүлээгдэж байна / Waiting for more information"
    if step < 3:
        return "APPROVED", None
    return "ISSUED", None
