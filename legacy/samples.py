"""Made-up test identities and sample forms built from a form description.

Used by the tests, the benchmark and the simulated agencies' seed data, so
that a sample built for a citizen finds that citizen's records. Works on the
public form description (the dicts GraphQL returns for ``service { form }``)
so it exercises exactly what a form-driven client sees. Nothing here is a
real person.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Mapping, Sequence
from typing import Any

# Made-up register numbers with valid birth dates (YYMMDD, month + 20 from 2000).
CITIZENS = ("УБ99010112", "ТА85122304", "ЧБ02230518", "ЭЮ76060631", "ӨҮ91111145")


def _digits(seed: str, n: int) -> str:
    value = int.from_bytes(hashlib.sha256(seed.encode()).digest()[:8], "big")
    return f"{value % 10**n:0{n}d}"


def _matching(pattern: str, seed: str) -> str:
    """A value for a catalog TEXT pattern. Catalog patterns are document
    numbers (digits with an optional Cyrillic letter or slash); try those
    shapes and fail loudly if a new kind of pattern appears."""
    compiled = re.compile(pattern)
    for length in range(1, 17):
        digits = _digits(seed, length)
        for candidate in (digits, "А" + digits, "А/" + digits, digits + "А"):
            if compiled.fullmatch(candidate):
                return candidate
    raise ValueError(f"no sample for pattern {pattern!r}")


def sample_value(field: Mapping[str, Any], citizen: str) -> Any:
    """A valid value for one field of a form description."""
    name, kind = field["name"], field["type"]
    seed = f"{citizen}:{name}"
    lo = field.get("min")
    hi = field.get("max")
    match kind:
        case "REGISTER_NUMBER":
            return citizen
        case "COMPANY_NUMBER":
            return _digits(seed, 7)
        case "PHONE":
            return "9" + _digits(seed, 7)
        case "EMAIL":
            return f"test{_digits(seed, 4)}@example.mn"
        case "PARCEL_NUMBER":
            return "18" + _digits(seed, 9)
        case "PLATE_NUMBER":
            return _digits(seed, 4) + "УБА"
        case "DATE":
            return f"2026-{int(_digits(seed, 2)) % 12 + 1:02d}-{int(_digits(seed, 3)) % 28 + 1:02d}"
        case "BOOLEAN":
            return int(_digits(seed, 1)) % 2 == 0
        case "ENUM":
            options: Sequence[Mapping[str, Any]] = field["options"]
            return options[int(_digits(seed, 3)) % len(options)]["value"]
        case "NUMBER" | "AMOUNT":
            low = float(lo) if lo is not None else 1.0
            high = float(hi) if hi is not None else low + 1000
            return int(low + (int(_digits(seed, 6)) % max(1, int(high - low) + 1)))
        case _:
            pattern = field.get("pattern")
            if pattern:
                return _matching(pattern, seed)
            text = f"Туршилтын утга {_digits(seed, 3)}"
            limit = field.get("maxLength") or field.get("max_length")
            return text[: int(limit)] if limit else text


def sample_form(fields: Sequence[Mapping[str, Any]], citizen: str = CITIZENS[0]) -> dict[str, Any]:
    """A complete valid form (optional fields included) for ``citizen``."""
    return {f["name"]: sample_value(f, citizen) for f in fields}
