"""The catalog's and applications' GraphQL types (the hand-written half)."""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence

import strawberry

from gateway.applications import Filed, Status
from gateway.catalog import model
from gateway.catalog.rules import RULES, effective_pattern
from gateway.clock import aware
from gateway.db import tables


@strawberry.type(description="Text in Mongolian and English / Монгол, англи текст")
class LocalizedText:
    mn: str
    en: str

    @classmethod
    def of(cls, text: model.Text) -> LocalizedText:
        return cls(mn=text.mn, en=text.en)


ServiceKind = strawberry.enum(model.ServiceKind, description="LOOKUP or APPLICATION")
FieldType = strawberry.enum(model.FieldType, description="Form field types")
BackendKind = strawberry.enum(model.BackendKind, description="Kinds of agency back end")


ApplicationStatus = strawberry.enum(Status, description="Where an application is / Өргөдлийн төлөв")


@strawberry.type
class Option:
    value: str
    label: LocalizedText


@strawberry.type(description="A form field with every rule the server enforces")
class FormField:
    name: str
    type: FieldType  # type: ignore[valid-type]
    required: bool
    label: LocalizedText
    pattern: str | None = strawberry.field(description="Regular expression the value must match")
    min: float | None
    max: float | None
    max_length: int | None
    options: list[Option]
    rule: LocalizedText = strawberry.field(description="The type's rules in words")

    @classmethod
    def of(cls, field: model.FormField) -> FormField:
        return cls(
            name=field.name,
            type=field.type,
            required=field.required,
            label=LocalizedText.of(field.label),
            pattern=effective_pattern(field),
            min=field.min,
            max=field.max,
            max_length=field.max_length,
            options=[Option(value=o.value, label=LocalizedText.of(o.label)) for o in field.options],
            rule=LocalizedText.of(RULES[field.type]),
        )


@strawberry.type
class Form:
    fields: list[FormField]


@strawberry.type(description="A result field of a LOOKUP")
class ResultField:
    name: str
    type: FieldType  # type: ignore[valid-type]
    label: LocalizedText


@strawberry.type(description="One municipal e-service / Цахим үйлчилгээ")
class Service:
    code: strawberry.ID
    kind: ServiceKind  # type: ignore[valid-type]
    name: LocalizedText
    description: LocalizedText
    category: str
    fee: int = strawberry.field(description="Fee in MNT / Төлбөр, төгрөгөөр")
    processing_days: int = strawberry.field(description="Working days to process")
    required_documents: list[LocalizedText]
    output: str
    graphql_field: str = strawberry.field(description="This service's own typed field")
    form: Form
    result: list[ResultField]
    agency_code: strawberry.Private[str]

    @strawberry.field
    def agency(self, info: strawberry.Info) -> Agency:
        agency: Agency = info.context.services.view.agencies[self.agency_code]
        return agency

    @classmethod
    def of(cls, service: model.Service) -> Service:
        return cls(
            code=strawberry.ID(service.code),
            kind=service.kind,
            name=LocalizedText.of(service.name),
            description=LocalizedText.of(service.description),
            category=service.category,
            fee=service.fee,
            processing_days=service.processing_days,
            required_documents=[LocalizedText.of(d) for d in service.required_documents],
            output=service.output.value,
            graphql_field=service.graphql_field,
            form=Form(fields=[FormField.of(f) for f in service.form]),
            result=[
                ResultField(name=r.name, type=r.type, label=LocalizedText.of(r.label))
                for r in service.result
            ],
            agency_code=service.agency_code,
        )


@strawberry.type(description="A city organisation / Нийслэлийн байгууллага")
class Agency:
    code: strawberry.ID
    name: LocalizedText
    description: LocalizedText
    backend_kind: BackendKind  # type: ignore[valid-type]
    services: list[Service]

    @classmethod
    def of(cls, agency: model.Agency, services: list[Service]) -> Agency:
        return cls(
            code=strawberry.ID(agency.code),
            name=LocalizedText.of(agency.name),
            description=LocalizedText.of(agency.description),
            backend_kind=agency.backend.kind,
            services=services,
        )


@strawberry.type
class PageInfo:
    has_next_page: bool
    has_previous_page: bool
    start_cursor: str | None
    end_cursor: str | None

    @classmethod
    def of(cls, cursors: Sequence[str], more: bool, back: bool) -> PageInfo:
        """For a page whose items have ``cursors``, in order."""
        return cls(
            has_next_page=more,
            has_previous_page=back,
            start_cursor=cursors[0] if cursors else None,
            end_cursor=cursors[-1] if cursors else None,
        )


@strawberry.type
class ServiceEdge:
    cursor: str
    node: Service


@strawberry.type
class ServiceConnection:
    total_count: int
    edges: list[ServiceEdge]
    page_info: PageInfo


@strawberry.input
class ServiceFilter:
    agency: strawberry.ID | None = None
    category: str | None = None
    kind: ServiceKind | None = None  # type: ignore[valid-type]
    search: str | None = strawberry.field(
        default=None, description="Words of the name or description, Mongolian or English"
    )


@strawberry.type
class ApplicationEvent:
    at: dt.datetime
    status: ApplicationStatus  # type: ignore[valid-type]
    note: str | None


@strawberry.type(description="A citizen's application / Иргэний өргөдөл")
class Application:
    id: strawberry.ID
    status: ApplicationStatus  # type: ignore[valid-type]
    reference: str | None = strawberry.field(description="The agency's own reference number")
    submitted_at: dt.datetime
    history: list[ApplicationEvent]
    service_code: strawberry.Private[str]

    @strawberry.field
    def service(self, info: strawberry.Info) -> Service:
        service: Service = info.context.services.view.services[self.service_code]
        return service

    @classmethod
    def of(cls, app: tables.Application | Filed, *, history: bool = True) -> Application:
        """``history=False``: the operation did not ask for it, and it was not loaded."""
        return cls(
            id=strawberry.ID(app.id),
            status=ApplicationStatus(app.status),
            reference=app.reference,
            submitted_at=aware(app.submitted_at),
            history=[
                ApplicationEvent(at=aware(e.at), status=ApplicationStatus(e.status), note=e.note)
                for e in app.history
            ]
            if history
            else [],
            service_code=app.service_code,
        )


@strawberry.type
class ApplicationEdge:
    cursor: str
    node: Application


@strawberry.type
class ApplicationConnection:
    total_count: int
    edges: list[ApplicationEdge]
    page_info: PageInfo


@strawberry.type
class SubmitApplicationPayload:
    application: Application


@strawberry.type(description="How one agency's back end is doing")
class AgencyHealth:
    agency: Agency
    backend_kind: BackendKind  # type: ignore[valid-type]
    status: str = strawberry.field(description="UP, DEGRADED or DOWN")
    breaker_state: str = strawberry.field(description="CLOSED, OPEN or HALF_OPEN")
    last_error: str | None
    latency_p50_ms: float | None
    latency_p95_ms: float | None
