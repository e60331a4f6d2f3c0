"""Deterministic record values for LOOKUP answers.

A simulated agency answers each lookup with values derived from the query,
so the same question always gets the same answer and different citizens get
different ones.
"""

from __future__ import annotations

import datetime as dt
import hashlib
from typing import Any

from gateway.catalog.model import FieldType

_WORDS = ("Баянзүрх", "Сүхбаатар", "Хан-Уул", "Чингэлтэй", "Сонгинохайрхан", "Баянгол")


def fake_value(field_type: FieldType, seed: str) -> Any:
    digest = hashlib.sha256(seed.encode()).digest()
    n = int.from_bytes(digest[:4], "big")
    match field_type:
        case FieldType.NUMBER:
            return n % 1000
        case FieldType.AMOUNT:
            return (n % 5_000_000) + 1000
        case FieldType.DATE:
            return dt.date(2020, 1, 1) + dt.timedelta(days=n % 2000)
        case FieldType.BOOLEAN:
            return bool(n % 2)
        case FieldType.PHONE:
            return f"9{n % 10_000_000:07d}"
        case FieldType.COMPANY_NUMBER:
            return f"{n % 10_000_000:07d}"
        case FieldType.PARCEL_NUMBER:
            return f"18{n % 1_000_000_000:09d}"
        case FieldType.PLATE_NUMBER:
            return f"{n % 10000:04d}УБА"
        case _:
            return f"{_WORDS[n % len(_WORDS)]}-{n % 100}"
