"""The built-in rules of each field type, stated once.

The validator enforces them and the form description shows them (as the
effective ``pattern`` and a bilingual ``rule`` text), so a client can
pre-validate any form without an app update.
"""

from __future__ import annotations

import datetime as dt
import re

from gateway.catalog.model import FieldType, FormField, Text

REGISTER_NUMBER = r"^[А-ЯЁӨҮ]{2}[0-9]{8}$"

BUILTIN_PATTERNS: dict[FieldType, str] = {
    FieldType.REGISTER_NUMBER: REGISTER_NUMBER,
    FieldType.COMPANY_NUMBER: r"^[0-9]{7}$",
    FieldType.PHONE: r"^[0-9]{8}$",
    FieldType.EMAIL: r"^[^@\s]+@[^@\s]+\.[^@\s]+$",
    FieldType.PARCEL_NUMBER: r"^[0-9]{11}$",
    FieldType.PLATE_NUMBER: r"^[0-9]{4}[А-ЯЁӨҮ]{3}$",
    FieldType.DATE: r"^[0-9]{4}-[0-9]{2}-[0-9]{2}$",
}

RULES: dict[FieldType, Text] = {
    FieldType.TEXT: Text(mn="Текст", en="Text"),
    FieldType.NUMBER: Text(mn="Тоо", en="A number"),
    FieldType.AMOUNT: Text(mn="Төгрөгөөр илэрхийлсэн бүхэл дүн", en="A whole amount in MNT"),
    FieldType.DATE: Text(mn="Огноо ОООО-СС-ӨӨ хэлбэрээр", en="A date as YYYY-MM-DD"),
    FieldType.BOOLEAN: Text(mn="Тийм эсвэл үгүй", en="True or false"),
    FieldType.ENUM: Text(mn="Жагсаалтаас нэгийг сонгоно", en="One of the listed options"),
    FieldType.REGISTER_NUMBER: Text(
        mn="2 кирилл үсэг, 8 цифр; 3-8 дахь цифр нь жинхэнэ төрсөн огноо (ОOССӨӨ, "
        "2000 оноос хойш төрсөн бол сар дээр 20 нэмнэ)",
        en="2 Cyrillic letters and 8 digits; digits 3-8 are a real birth date (YYMMDD, "
        "month + 20 for births from 2000)",
    ),
    FieldType.COMPANY_NUMBER: Text(mn="7 оронтой тоо", en="7 digits"),
    FieldType.PHONE: Text(mn="8 оронтой утасны дугаар", en="An 8-digit phone number"),
    FieldType.EMAIL: Text(mn="Цахим шуудангийн хаяг", en="An e-mail address"),
    FieldType.PARCEL_NUMBER: Text(
        mn="11 оронтой нэгж талбарын дугаар", en="An 11-digit parcel number"
    ),
    FieldType.PLATE_NUMBER: Text(
        mn="4 цифр, 3 кирилл үсэг (жишээ нь 1234УБА)",
        en="4 digits and 3 Cyrillic letters (e.g. 1234УБА)",
    ),
}


def effective_pattern(field: FormField) -> str | None:
    """The pattern a value must match: the catalog's own, else the type's built-in one."""
    return field.pattern or BUILTIN_PATTERNS.get(field.type)


_COMPILED: dict[str, re.Pattern[str]] = {}


def matches(pattern: str, value: str) -> bool:
    compiled = _COMPILED.get(pattern)
    if compiled is None:
        compiled = _COMPILED[pattern] = re.compile(pattern)
    return compiled.fullmatch(value) is not None


def register_birth_date(value: str) -> dt.date | None:
    """The birth date encoded in a register number, or None if it is not a real date."""
    year, month, day = int(value[2:4]), int(value[4:6]), int(value[6:8])
    if month > 20:
        month -= 20
        year += 2000
    else:
        year += 1900
    try:
        return dt.date(year, month, day)
    except ValueError:
        return None
