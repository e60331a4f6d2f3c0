"""Form validation: every rule, in both languages, naming the field."""

from __future__ import annotations

import pytest

from gateway.catalog.validation import FormInvalid, validate_form
from tests.factories import application_service

SERVICE = application_service()
GOOD = {"registerNumber": "УБ99010112", "phone": "99112233", "area": 12.5, "district": "KHAN_UUL"}


def errors_of(form: dict[str, object]) -> dict[str, tuple[str, str]]:
    with pytest.raises(FormInvalid) as caught:
        validate_form(SERVICE, form)
    return {name: (text.mn, text.en) for name, text in caught.value.fields.items()}


def test_a_valid_form_is_normalised() -> None:
    clean = validate_form(
        SERVICE, {**GOOD, "registerNumber": " уб99010112 ", "moveIn": "2026-03-01"}
    )
    assert clean["registerNumber"] == "УБ99010112"
    assert clean["moveIn"] == "2026-03-01"
    assert "note" not in clean


@pytest.mark.parametrize(
    ("value", "english"),
    [
        ("УБ9901011", "2 Cyrillic letters followed by 8 digits"),
        ("UB99010112", "2 Cyrillic letters followed by 8 digits"),
        ("УБ99023012", "birth date in the register number is not a real date"),  # 30 Feb
        ("УБ99130112", "birth date in the register number is not a real date"),  # month 13
        ("УБ05330112", "birth date in the register number is not a real date"),  # month 33
    ],
)
def test_bad_register_numbers_are_refused(value: str, english: str) -> None:
    errors = errors_of({**GOOD, "registerNumber": value})
    assert list(errors) == ["registerNumber"]
    mn, en = errors["registerNumber"]
    assert english in en
    assert "Регистрийн дугаар" in mn
    assert value not in en and value not in mn  # never echo personal data


def test_births_from_2000_add_20_to_the_month() -> None:
    assert validate_form(SERVICE, {**GOOD, "registerNumber": "ЧБ02230518"})


@pytest.mark.parametrize(
    ("field", "value", "english"),
    [
        ("phone", "9911223", "required format"),
        ("area", 0, "at least 1"),
        ("area", 1001, "at most 1000"),
        ("area", "12", "must be a number"),
        ("fee", 10.5, "whole number"),
        ("moveIn", "2026-02-30", "real date"),
        ("moveIn", "01/03/2026", "real date"),
        ("urgent", "yes", "true or false"),
        ("note", "x" * 11, "at most 10 characters"),
        ("district", "NOWHERE", "listed options"),
    ],
)
def test_each_rule_names_the_field(field: str, value: object, english: str) -> None:
    errors = errors_of({**GOOD, field: value})
    assert list(errors) == [field]
    assert english in errors[field][1].lower() or english in errors[field][1]
    assert errors[field][0]  # a Mongolian message too


def test_missing_required_and_unknown_fields() -> None:
    errors = errors_of({"registerNumber": "УБ99010112", "extra": 1})
    assert set(errors) == {"phone", "area", "district", "extra"}
    assert errors["phone"] == ("Заавал бөглөнө", "This field is required")
    assert errors["extra"][1] == "The form has no such field"
