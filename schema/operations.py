"""The one validation-and-dispatch path shared by the typed per-service
fields and the generic ``lookup`` / ``submitApplication`` fields."""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable, Mapping
from typing import Any

from auth.audit.model import Purpose
from auth.audit.record import access_by, record
from auth.principal import Principal, PrincipalKind
from connectors.errors import ConnectorError
from connectors.registry import RecordNotFound
from gateway.applications import IdempotencyConflict
from gateway.catalog.model import Service, ServiceKind
from gateway.catalog.validation import FormInvalid, validate_form
from gateway.db import tables
from schema import errors
from schema.context import Context


def require_citizen(context: Context) -> Principal:
    principal = context.principal
    if not principal.authenticated:
        raise errors.unauthenticated()
    if principal.kind is not PrincipalKind.CITIZEN or not principal.subject:
        raise errors.forbidden()
    return principal


def require_authenticated(context: Context) -> Principal:
    if not context.principal.authenticated:
        raise errors.unauthenticated()
    return context.principal


def find_service(context: Context, code: str, kind: ServiceKind) -> Service:
    service = context.services.catalog.service(code)
    if service is None or service.kind is not kind:
        raise errors.not_found("Үйлчилгээ", "Service")
    return service


def _validated(service: Service, form: Mapping[str, Any]) -> dict[str, Any]:
    try:
        return validate_form(service, form)
    except FormInvalid as exc:
        raise errors.bad_user_input(exc.fields) from exc


async def lookup(context: Context, service: Service, form: Mapping[str, Any]) -> dict[str, Any]:
    require_citizen(context)
    clean = _validated(service, form)
    try:
        values = await context.services.registry.lookup(service, clean)
    except RecordNotFound as exc:
        raise errors.not_found("Бүртгэл", "Record") from exc
    except ConnectorError as exc:
        raise errors.from_connector(exc) from exc
    # Recorded before the answer is returned: no log row, no data.
    await _record(context, service, [*clean, *values], Purpose.LOOKUP)
    return values


async def submit(
    context: Context, service: Service, form: Mapping[str, Any], idempotency_key: str | None
) -> tables.Application:
    principal = require_citizen(context)
    clean = _validated(service, form)
    assert principal.subject is not None
    try:
        app = await context.services.store.submit(
            principal.subject,
            service,
            clean,
            idempotency_key,
            access=access_by(
                principal, principal.subject, agency=service.agency_code,
                service_code=service.code, fields=clean, purpose=Purpose.SUBMISSION,
            ),
        )  # fmt: skip
    except IdempotencyConflict as exc:
        raise errors.conflict(
            "Энэ түлхүүрээр өөр үйлчилгээнд өргөдөл гаргасан байна",
            "This idempotency key was already used for another service",
        ) from exc
    return app


async def _record(
    context: Context, service: Service, fields: Iterable[str], purpose: Purpose
) -> None:
    principal = context.principal
    assert principal.subject is not None
    await record(
        context.services.store.sessions,
        access_by(
            principal, principal.subject, agency=service.agency_code,
            service_code=service.code, fields=fields, purpose=purpose,
        ),
    )  # fmt: skip


def jsonable(values: Mapping[str, Any]) -> dict[str, Any]:
    return {k: v.isoformat() if isinstance(v, dt.date) else v for k, v in values.items()}
