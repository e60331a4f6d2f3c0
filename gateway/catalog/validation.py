"""Validate a submitted form against its service's form description.

Returns the normalised form (JSON-ready: dates as ISO strings) or raises
``FormInvalid`` with one bilingual message per bad field. Messages name the
rule, never echo the value (it may be personal data).
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping
from typing import Any

from gateway.catalog.model import FieldType, FormField, Service, Text
from gateway.catalog.rules import effective_pattern, matches, register_birth_date


class FormInvalid(Exception):
    def __init__(self, fields: dict[str, Text]) -> None:
        super().__init__("invalid form: " + ", ".join(sorted(fields)))
        self.fields = fields


def _t(mn: str, en: str) -> Text:
    return Text(mn=mn, en=en)


REQUIRED = _t("Заавал бөглөнө", "This field is required")
UNKNOWN = _t("Маягтад ийм талбар байхгүй", "The form has no such field")
NOT_TEXT = _t("Текст байх ёстой", "Must be text")
NOT_NUMBER = _t("Тоо байх ёстой", "Must be a number")
NOT_WHOLE = _t("Бүхэл тоо байх ёстой", "Must be a whole number")
NOT_BOOL = _t("Тийм эсвэл үгүй байх ёстой", "Must be true or false")
NOT_DATE = _t("Огноо ОООО-СС-ӨӨ хэлбэртэй, жинхэнэ огноо байх ёстой",
              "Must be a real date written YYYY-MM-DD")  # fmt: skip
BAD_OPTION = _t("Зөвшөөрөгдсөн сонголтуудын нэг байх ёстой", "Must be one of the listed options")
BAD_PATTERN = _t("Шаардлагатай хэлбэрт тохирохгүй байна", "Does not match the required format")
BAD_REGISTER = _t(
    "Регистрийн дугаар 2 кирилл үсэг, 8 цифрээс бүрдэнэ",
    "A register number is 2 Cyrillic letters followed by 8 digits",
)
BAD_BIRTH_DATE = _t(
    "Регистрийн дугаар дахь төрсөн огноо жинхэнэ огноо биш байна",
    "The birth date in the register number is not a real date",
)


def _too_small(limit: float) -> Text:
    return _t(f"{limit:g}-аас багагүй байх ёстой", f"Must be at least {limit:g}")


def _too_large(limit: float) -> Text:
    return _t(f"{limit:g}-аас ихгүй байх ёстой", f"Must be at most {limit:g}")


def _too_long(limit: int) -> Text:
    return _t(f"{limit} тэмдэгтээс урт байж болохгүй", f"Must be at most {limit} characters")


_UPPERCASED = {FieldType.REGISTER_NUMBER, FieldType.PLATE_NUMBER}


def _check(field: FormField, value: Any) -> tuple[Any, Text | None]:
    """(normalised value, error or None) for one present value."""
    kind = field.type
    if kind is FieldType.BOOLEAN:
        return (value, None) if isinstance(value, bool) else (None, NOT_BOOL)
    if kind in (FieldType.NUMBER, FieldType.AMOUNT):
        if isinstance(value, bool) or not isinstance(value, int | float):
            return None, NOT_NUMBER
        if kind is FieldType.AMOUNT:
            if value != int(value):
                return None, NOT_WHOLE
            value = int(value)
        if field.min is not None and value < field.min:
            return None, _too_small(field.min)
        if field.max is not None and value > field.max:
            return None, _too_large(field.max)
        return value, None
    if not isinstance(value, str):
        return None, NOT_TEXT
    text = value.strip()
    if kind in _UPPERCASED:
        text = text.upper()
    if kind is FieldType.ENUM:
        ok = any(option.value == text for option in field.options)
        return (text, None) if ok else (None, BAD_OPTION)
    if field.max_length is not None and len(text) > field.max_length:
        return None, _too_long(field.max_length)
    pattern = effective_pattern(field)
    if kind is FieldType.DATE:
        try:
            day = dt.date.fromisoformat(text)
        except ValueError:
            return None, NOT_DATE
        if pattern is not None and not matches(pattern, text):
            return None, NOT_DATE
        return day.isoformat(), None
    if pattern is not None and not matches(pattern, text):
        return None, BAD_REGISTER if kind is FieldType.REGISTER_NUMBER else BAD_PATTERN
    if kind is FieldType.REGISTER_NUMBER and register_birth_date(text) is None:
        return None, BAD_BIRTH_DATE
    return text, None


def validate_form(service: Service, form: Mapping[str, Any]) -> dict[str, Any]:
    errors: dict[str, Text] = {}
    clean: dict[str, Any] = {}
    known = {f.name for f in service.form}
    for name in form:
        if name not in known:
            errors[name] = UNKNOWN
    for field in service.form:
        value = form.get(field.name)
        if value is None or (isinstance(value, str) and not value.strip()):
            if field.required:
                errors[field.name] = REQUIRED
            continue
        normalised, error = _check(field, value)
        if error is not None:
            errors[field.name] = error
        else:
            clean[field.name] = normalised
    if errors:
        raise FormInvalid(errors)
    return clean
