"""A SQL agency shaped like catalog/prop.toml, with per-test table names,
and the connector requests the SQL connector's tests send it."""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping
from typing import Any

from connectors.base import Action, BackendRequest
from connectors.config import Timeouts
from gateway.catalog.model import Agency, FieldType, Service, ServiceKind
from legacy.samples import CITIZENS, sample_form
from legacy.sql import form_description

STATUS_CODES = {
    "10": "DELIVERED",
    "20": "IN_REVIEW",
    "25": "NEEDS_INFO",
    "30": "APPROVED",
    "40": "REJECTED",
    "50": "ISSUED",
}
FAST = Timeouts(connect=3.0, read=2.0, total=10.0)


def _text(word: str) -> dict[str, str]:
    return {"mn": word, "en": word}


def make_agency(
    suffix: str, *, area_column: str = "AREA_M2", status_codes: Mapping[str, str] = STATUS_CODES
) -> Agency:
    """A property agency shaped like catalog/prop.toml, with per-test table names."""
    owner = {"name": "registerNumber", "type": "REGISTER_NUMBER", "label": _text("Регистр")}
    parcel = {"name": "parcelNumber", "type": "PARCEL_NUMBER", "label": _text("Нэгж талбар")}
    common = {
        "category": "property",
        "name": _text("Үйлчилгээ"),
        "description": _text("Тайлбар"),
    }
    lookup = {
        **common,
        "code": "PROP-001",
        "kind": "LOOKUP",
        "graphql_field": "propertyOwnership",
        "output": "INFORMATION",
        "form": [owner, parcel],
        "result": [
            {"name": "area", "type": "NUMBER", "label": _text("Талбай")},
            {"name": "validUntil", "type": "DATE", "label": _text("Хүчинтэй")},
            {"name": "district", "type": "TEXT", "label": _text("Дүүрэг")},
            {"name": "fee", "type": "AMOUNT", "label": _text("Төлбөр")},
        ],
        "binding": {
            "operation": f"V_PROP_OWNSHP_{suffix}",
            "request": {"REG_NO": "registerNumber", "PRCL_NO": "parcelNumber"},
            "response": {
                "area": area_column,
                "validUntil": "VALID_DT",
                "district": "DSTR_NM",
                "fee": "FEE_AMT",
            },
        },
    }
    application = {
        **common,
        "code": "PROP-002",
        "kind": "APPLICATION",
        "graphql_field": "landUseRequest",
        "output": "DECISION",
        "form": [
            owner,
            parcel,
            {
                "name": "purpose",
                "type": "ENUM",
                "label": _text("Зориулалт"),
                "options": [
                    {"value": "HOUSING", "label": _text("Орон сууц")},
                    {"value": "GARDEN", "label": _text("Цэцэрлэг")},
                ],
            },
            {"name": "startDate", "type": "DATE", "label": _text("Эхлэх огноо")},
            {"name": "area", "type": "NUMBER", "label": _text("Талбай"), "min": 1, "max": 5000},
        ],
        "binding": {
            "operation": f"T_PROP_REQ_{suffix}",
            "request": {
                "REG_NO": "registerNumber",
                "PRCL_NO": "parcelNumber",
                "PRPS_CD": "purpose",
                "START_DT": "startDate",
                "AREA_M2": "area",
            },
        },
    }
    return Agency.model_validate(
        {
            "code": "PROP",
            "name": _text("Өмч"),
            "description": _text("Үл хөдлөх"),
            "backend": {
                "kind": "SQL",
                "dialect": {"status_codes": dict(status_codes), "reference_prefix": "PROP"},
            },
            "services": [lookup, application],
        }
    )


def payload_for(service: Service, citizen: str) -> dict[str, Any]:
    """What the mapping layer sends: back-end names, dates as datetime.date."""
    form = sample_form(form_description(service.form), citizen)
    types = {f.name: f.type for f in service.form}
    payload: dict[str, Any] = {}
    for column, field in service.binding.request.items():
        value = form[field]
        if types[field] is FieldType.DATE:
            value = dt.date.fromisoformat(value)
        payload[column] = value
    return payload


def service(agency: Agency, kind: ServiceKind) -> Service:
    return next(s for s in agency.services if s.kind is kind)


def lookup(agency: Agency, payload: Mapping[str, Any]) -> BackendRequest:
    svc = service(agency, ServiceKind.LOOKUP)
    return BackendRequest(
        agency.code, svc.code, svc.binding.operation, Action.LOOKUP, payload=payload
    )


def submit(agency: Agency, key: str, citizen: str = CITIZENS[0]) -> BackendRequest:
    svc = service(agency, ServiceKind.APPLICATION)
    return BackendRequest(
        agency.code,
        svc.code,
        svc.binding.operation,
        Action.SUBMIT,
        payload=payload_for(svc, citizen),
        idempotency_key=key,
    )


def status(agency: Agency, reference: str) -> BackendRequest:
    svc = service(agency, ServiceKind.APPLICATION)
    return BackendRequest(
        agency.code, svc.code, svc.binding.operation, Action.STATUS, reference=reference
    )
