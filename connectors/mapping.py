"""Catalog-driven translation between our field names and a back end's.

No agency-specific Python: the service's binding says which back-end field
carries which form field, and which back-end field fills which result
field. Values leave as Python types (dates as ``datetime.date``); results
come back as whatever the protocol gave (often strings) and are coerced
here by the result field's type, reading the agency dialect's date format.
"""

from __future__ import annotations

import datetime as dt
import functools
import re
from collections.abc import Mapping
from decimal import Decimal, InvalidOperation
from typing import Any

from connectors.errors import MappingError
from gateway.catalog.model import Agency, FieldType, Service


def to_backend(service: Service, form: Mapping[str, Any]) -> dict[str, Any]:
    types = {f.name: f.type for f in service.form}
    payload: dict[str, Any] = {}
    for backend_field, form_field in service.binding.request.items():
        value = form.get(form_field)
        if isinstance(value, str) and types[form_field] is FieldType.DATE:
            value = dt.date.fromisoformat(value)
        payload[backend_field] = value
    return payload


# What strftime writes for each: zero-padded ASCII digits.
_PADDED = {"%Y": "(?P<Y>[0-9]{4})", "%m": "(?P<m>[0-9]{2})", "%d": "(?P<d>[0-9]{2})"}
_DIRECTIVE = re.compile(r"(%.)")


@functools.cache
def _padded(date_format: str) -> re.Pattern[str] | None:
    """What strftime writes in a date format made of %Y, %m, %d and
    punctuation, as a pattern; None for any other format.

    Every text it matches strptime reads as the same date or rejects as
    ValueError just as ``dt.date`` does, at a fifth of the cost: strptime
    looks up the locale and walks its directives on every call. Anything
    else (a single-digit month, a two-digit year) is still strptime's.
    """
    parts = _DIRECTIVE.split(date_format)
    directives, literals = parts[1::2], "".join(parts[::2])
    # strptime matches letters in any case and whitespace by runs: left to it.
    if sorted(directives) != sorted(_PADDED) or any(
        c == "%" or c.isalpha() or c.isspace() for c in literals
    ):
        return None
    return re.compile("".join(_PADDED.get(part) or re.escape(part) for part in parts))


def _parse_date(text: str, date_format: str) -> dt.date:
    padded = _padded(date_format)
    found = padded.fullmatch(text) if padded is not None else None
    if found is None:
        return dt.datetime.strptime(text, date_format).date()
    return dt.date(int(found["Y"]), int(found["m"]), int(found["d"]))


def _date(value: Any, date_format: str) -> dt.date:
    if isinstance(value, dt.datetime):
        return value.date()
    if isinstance(value, dt.date):
        return value
    text = str(value).strip()
    for fmt in (date_format, "%Y-%m-%d"):
        try:
            return _parse_date(text[:10] if fmt == "%Y-%m-%d" else text, fmt)
        except ValueError:
            continue
    raise ValueError("not a date")


def _number(value: Any) -> Decimal:
    if isinstance(value, bool):
        raise ValueError("boolean is not a number")
    try:
        return Decimal(str(value).strip().replace(",", ""))
    except InvalidOperation as exc:
        raise ValueError("not a number") from exc


def _bool(value: Any) -> bool:
    if isinstance(value, bool):
        return value
    text = str(value).strip().lower()
    if text in ("1", "true", "y", "yes", "t", "тийм"):
        return True
    if text in ("0", "false", "n", "no", "f", "үгүй"):
        return False
    raise ValueError("not a boolean")


def _coerce(kind: FieldType, value: Any, date_format: str) -> Any:
    match kind:
        case FieldType.DATE:
            return _date(value, date_format)
        case FieldType.AMOUNT:
            return int(_number(value))
        case FieldType.NUMBER:
            number = _number(value)
            return int(number) if number == number.to_integral_value() else float(number)
        case FieldType.BOOLEAN:
            return _bool(value)
        case _:
            return str(value).strip()


def from_backend(agency: Agency, service: Service, data: Mapping[str, Any]) -> dict[str, Any]:
    date_format = str(agency.backend.dialect.get("date_format", "%Y-%m-%d"))
    result: dict[str, Any] = {}
    for field in service.result:
        backend_field = service.binding.response[field.name]
        if backend_field not in data:
            raise MappingError(agency.code, service.code, field.name, f"{backend_field} missing")
        value = data[backend_field]
        if value is None or value == "":
            result[field.name] = None
            continue
        try:
            result[field.name] = _coerce(field.type, value, date_format)
        except (ValueError, ArithmeticError) as exc:
            raise MappingError(
                agency.code, service.code, field.name, f"{backend_field} is not a {field.type}"
            ) from exc
    return result
