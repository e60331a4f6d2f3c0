"""The one validation-and-dispatch path shared by the typed per-service
fields and the generic ``lookup`` / ``submitApplication`` fields.

A citizen acts for themself. An app acts for the citizens its form names in
REGISTER_NUMBER fields, as far as its scopes allow (checked by the fields'
policies, and again here, so no field can reach this path unchecked); its
application is filed for the citizen in the form's first such field. A
sandbox app reaches the sandbox registry and leaves no access-log rows: it
touches no real personal data.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from strawberry import Info

from auth.audit.model import Access, Purpose
from auth.audit.record import RowsWhenSent, access_by
from auth.permissions.scopes import missing_scopes, service_scopes
from auth.principal import Principal, PrincipalKind
from connectors.errors import ConnectorError
from connectors.registry import ConnectorRegistry, RecordNotFound
from gateway.applications import Filed, IdempotencyConflict
from gateway.catalog.model import FieldType, FormField, Service, ServiceKind, Text
from gateway.catalog.validation import FormInvalid, validate_form
from gateway.db import tables
from schema import errors
from schema.context import Context
from schema.lookup_batches import PendingLookup


def require_citizen(context: Context) -> Principal:
    principal = context.principal
    if not principal.authenticated:
        raise errors.unauthenticated()
    if principal.kind is not PrincipalKind.CITIZEN or not principal.subject:
        raise errors.forbidden()
    return principal


def require_caller(context: Context, service: Service) -> Principal:
    """A citizen, or an app holding the service's scopes."""
    principal = context.principal
    if not principal.authenticated:
        raise errors.unauthenticated()
    if principal.kind not in (PrincipalKind.CITIZEN, PrincipalKind.APP) or not principal.subject:
        raise errors.forbidden()
    filing = service.kind is ServiceKind.APPLICATION
    missing = missing_scopes(principal, service_scopes(service.code, filing=filing))
    if missing:
        raise errors.missing_scopes(missing)
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


_NO_CITIZEN_MN = (
    "Энэ үйлчилгээний маягтад иргэний регистрийн дугаар байхгүй тул "
    "апп иргэний өмнөөс гаргах боломжгүй"
)
_NO_CITIZEN_EN = (
    "This service's form has no register number field naming a citizen, "
    "so an app cannot file it for one"
)
_NAMES_THE_CITIZEN = Text(
    mn="Апп өргөдөл гаргахад заавал: өргөдөл энэ иргэнийх болно",
    en="Required when an app files: it names the citizen the application is for",
)


def _register_fields(service: Service) -> list[FormField]:
    return [f for f in service.form if f.type is FieldType.REGISTER_NUMBER]


def citizens_named(service: Service, clean: Mapping[str, Any]) -> list[str]:
    """The citizens an app's call concerns: the form's REGISTER_NUMBER
    values, in form order, each once."""
    named: list[str] = []
    for field in _register_fields(service):
        value = clean.get(field.name)
        if value and value not in named:
            named.append(str(value))
    return named


def _concerned(principal: Principal, service: Service, clean: Mapping[str, Any]) -> list[str]:
    """Whose data a call touches, i.e. whose access log gets a row. None for
    a sandbox app (made-up data only). An app's lookup of a service whose
    form names no citizen (a parcel, a company) has no one to log it for."""
    if principal.sandbox:
        return []
    if principal.kind is PrincipalKind.APP:
        return citizens_named(service, clean)
    assert principal.subject is not None
    return [principal.subject]


def _accesses(
    principal: Principal,
    service: Service,
    clean: Mapping[str, Any],
    fields: Iterable[str],
    purpose: Purpose,
) -> list[Access]:
    names = sorted(set(fields))
    return [
        access_by(principal, citizen, agency=service.agency_code, service_code=service.code,
                  fields=names, purpose=purpose)
        for citizen in _concerned(principal, service, clean)
    ]  # fmt: skip


async def lookup(info: Info, service: Service, form: Mapping[str, Any]) -> dict[str, Any]:
    """The citizen's data goes to the agency, and its answer comes back only
    once the access is in the log: no log row, no data.

    The row is started as the request leaves for the agency (after the
    breaker and the cap let it through) and written while the agency works,
    rather than after its answer: the log's commit no longer adds to the
    wait (a fan-out's rows share one commit, too). So a request that was
    sent is logged even if no answer comes back, as a delivery attempt is,
    and one refused before sending is not. An agency whose back end answers
    several lookups in one call gets this operation's lookups of it as one
    batch (schema/lookup_batches.py), logged the same way."""
    context: Context = info.context
    principal = require_caller(context, service)
    clean = _validated(service, form)
    # Every result field is named, as every one is in each answer.
    fields = [*clean, *(result.name for result in service.result)]
    accesses = _accesses(principal, service, clean, fields, Purpose.LOOKUP)
    registry = context.services.registry_for(principal)
    try:
        agency = service.agency_code
        batches = context.lookup_batches() if registry.batches(agency) else None
        if batches is not None and batches.worth_it(info, agency):
            return await batches.lookup(registry, PendingLookup(service, clean, accesses))
        return await _sent(context, registry, service, clean, accesses)
    except RecordNotFound as exc:
        raise errors.not_found("Бүртгэл", "Record") from exc
    except ConnectorError as exc:
        raise errors.from_connector(exc) from exc


async def _sent(
    context: Context,
    registry: ConnectorRegistry,
    service: Service,
    clean: Mapping[str, Any],
    accesses: Sequence[Access],
) -> dict[str, Any]:
    """One lookup, sent on its own."""
    rows = RowsWhenSent(context.services.access_log, accesses)
    try:
        values = await registry.lookup(service, clean, sending=rows.sending)
    except (RecordNotFound, ConnectorError):
        await rows.stored()
        raise
    except BaseException:
        rows.abandoned()
        raise
    await rows.stored()
    return values


async def submit(
    context: Context, service: Service, form: Mapping[str, Any], idempotency_key: str | None
) -> tables.Application | Filed:
    principal = require_caller(context, service)
    assert principal.subject is not None
    app_filing = principal.kind is PrincipalKind.APP
    if app_filing and not _register_fields(service):
        # FORBIDDEN, not BAD_USER_INPUT: no form could make this acceptable
        # from an app (the same request is fine from a citizen), and it is
        # said before the form is read, whatever the form holds.
        raise errors.forbidden(_NO_CITIZEN_MN, _NO_CITIZEN_EN)
    clean = _validated(service, form)
    citizen = principal.subject
    if app_filing:
        first = _register_fields(service)[0]
        if not clean.get(first.name):  # an optional field left out
            raise errors.bad_user_input({first.name: _NAMES_THE_CITIZEN})
        citizen = str(clean[first.name])
    try:
        app = await context.services.store.submit(
            citizen,
            service,
            clean,
            idempotency_key,
            _accesses(principal, service, clean, clean, Purpose.SUBMISSION),
            submitted_by=principal.subject if app_filing else None,
            sandbox=principal.sandbox,
        )
    except IdempotencyConflict as exc:
        raise errors.conflict(
            "Энэ түлхүүрээр өөр үйлчилгээнд өргөдөл гаргасан байна",
            "This idempotency key was already used for another service",
        ) from exc
    return app


def jsonable(values: Mapping[str, Any]) -> dict[str, Any]:
    return {k: v.isoformat() if isinstance(v, dt.date) else v for k, v in values.items()}
