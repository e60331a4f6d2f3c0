"""Small made-up catalog entries for tests that must not depend on the real catalog."""

from __future__ import annotations

from typing import Any

from gateway.catalog.model import Agency, Service


def _text(word: str) -> dict[str, str]:
    return {"mn": f"{word} (мн)", "en": word}


def application_service(code: str = "TEST-001", **overrides: Any) -> Service:
    data: dict[str, Any] = {
        "code": code,
        "kind": "APPLICATION",
        "graphql_field": "testApply" + code[-3:],
        "category": "testing",
        "name": _text("Test application"),
        "description": _text("A made-up application"),
        "fee": 5000,
        "processing_days": 3,
        "output": "CERTIFICATE",
        "form": [
            {"name": "registerNumber", "type": "REGISTER_NUMBER", "label": _text("Register")},
            {"name": "phone", "type": "PHONE", "label": _text("Phone")},
            {"name": "area", "type": "NUMBER", "label": _text("Area"), "min": 1, "max": 1000},
            {"name": "fee", "type": "AMOUNT", "label": _text("Fee"), "required": False},
            {"name": "moveIn", "type": "DATE", "label": _text("Move-in"), "required": False},
            {"name": "urgent", "type": "BOOLEAN", "label": _text("Urgent"), "required": False},
            {
                "name": "note", "type": "TEXT", "label": _text("Note"),
                "required": False, "max_length": 10,
            },
            {
                "name": "district", "type": "ENUM", "label": _text("District"),
                "options": [
                    {"value": "BAYANZURKH", "label": _text("Bayanzurkh")},
                    {"value": "KHAN_UUL", "label": _text("Khan-Uul")},
                ],
            },
        ],
        "binding": {
            "operation": "APPLY",
            "request": {
                "REG": "registerNumber", "PHONE": "phone", "AREA": "area", "FEE": "fee",
                "MOVE": "moveIn", "URG": "urgent", "NOTE": "note", "DIST": "district",
            },
        },
    }  # fmt: skip
    data.update(overrides)
    return Service.model_validate(data)


def lookup_service(code: str = "TEST-002") -> Service:
    return Service.model_validate(
        {
            "code": code,
            "kind": "LOOKUP",
            "graphql_field": "testLookup" + code[-3:],
            "category": "testing",
            "name": _text("Test lookup"),
            "description": _text("A made-up lookup"),
            "output": "INFORMATION",
            "form": [
                {"name": "registerNumber", "type": "REGISTER_NUMBER", "label": _text("Register")}
            ],
            "result": [
                {"name": "validUntil", "type": "DATE", "label": _text("Valid until")},
                {"name": "due", "type": "AMOUNT", "label": _text("Due")},
                {"name": "active", "type": "BOOLEAN", "label": _text("Active")},
            ],
            "binding": {
                "operation": "LOOK",
                "request": {"REG_NO": "registerNumber"},
                "response": {"validUntil": "VALID_DT", "due": "DUE_AMT", "active": "ACT"},
            },
        }
    )


def agency(code: str = "TEST", kind: str = "REST", dialect: dict[str, Any] | None = None) -> Agency:
    return Agency.model_validate(
        {
            "code": code,
            "name": _text("Test agency"),
            "description": _text("A made-up agency"),
            "backend": {"kind": kind, "dialect": dialect or {}},
            "services": [
                application_service(f"{code}-001").model_dump(),
                lookup_service(f"{code}-002").model_dump(),
            ],
        }
    )
