"""The generated half of the schema: one typed field per catalog service.

LOOKUP services become ``Query`` fields returning a typed result object;
APPLICATION services become ``Mutation`` fields taking a typed input object
whose fields are the form's field names. Strawberry has no API for types
known only at run time, so classes and resolver annotations are built with
``type()`` and then handed to the ordinary strawberry decorators.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable
from typing import Any

import strawberry
from strawberry.types.base import StrawberryObjectDefinition

from gateway.catalog.loader import Catalog
from gateway.catalog.model import FieldType, Service, ServiceKind
from schema import operations
from schema.types import Application, SubmitApplicationPayload

_PY: dict[FieldType, type] = {
    FieldType.NUMBER: float,
    FieldType.AMOUNT: float,
    FieldType.BOOLEAN: bool,
    FieldType.DATE: dt.date,
}


def _pascal(name: str) -> str:
    return name[:1].upper() + name[1:]


def _describe(service: Service) -> str:
    return (
        f"{service.name.mn} / {service.name.en} ({service.code}). "
        f"{service.description.mn} / {service.description.en}"
    )


def _input_type(service: Service) -> type:
    annotations: dict[str, Any] = {}
    namespace: dict[str, Any] = {}
    for field in service.form:
        py = _PY.get(field.type, str)
        annotations[field.name] = py if field.required else py | None
        description = f"{field.label.mn} / {field.label.en}"
        namespace[field.name] = (
            strawberry.field(description=description)
            if field.required
            else strawberry.field(description=description, default=None)
        )
    namespace["__annotations__"] = annotations
    cls = type(f"{_pascal(service.graphql_field)}Input", (), namespace)
    return strawberry.input(cls, description=f"Form of {service.code} / {service.code} маягт")


def _result_type(service: Service) -> type:
    annotations: dict[str, Any] = {}
    namespace: dict[str, Any] = {}
    for field in service.result:
        annotations[field.name] = _PY.get(field.type, str) | None
        namespace[field.name] = strawberry.field(
            description=f"{field.label.mn} / {field.label.en}", default=None
        )
    namespace["__annotations__"] = annotations
    cls = type(f"{_pascal(service.graphql_field)}Result", (), namespace)
    return strawberry.type(cls, description=f"Result of {service.code} / {service.code} хариу")


def _form_of(value: object) -> dict[str, Any]:
    definition: StrawberryObjectDefinition = value.__strawberry_definition__  # type: ignore[attr-defined]
    form = {}
    for field in definition.fields:
        item = getattr(value, field.python_name)
        if item is None:
            continue
        form[field.python_name] = item.isoformat() if isinstance(item, dt.date) else item
    return form


def _lookup_resolver(service: Service, input_type: type, result_type: type) -> Callable[..., Any]:
    async def resolve(info: strawberry.Info, input: Any) -> Any:
        values = await operations.lookup(info, service, _form_of(input))
        return result_type(**values)

    resolve.__annotations__ = {
        "info": strawberry.Info,
        "input": input_type,
        "return": result_type | None,
    }
    return resolve


def _submit_resolver(service: Service, input_type: type) -> Callable[..., Any]:
    async def resolve(
        info: strawberry.Info,
        input: Any,
        idempotency_key: str | None = None,
    ) -> SubmitApplicationPayload:
        app = await operations.submit(info.context, service, _form_of(input), idempotency_key)
        return SubmitApplicationPayload(application=Application.of(app))

    resolve.__annotations__ = {
        "info": strawberry.Info,
        "input": input_type,
        "idempotency_key": str | None,
        "return": SubmitApplicationPayload,
    }
    return resolve


def service_fields(catalog: Catalog) -> tuple[dict[str, Any], dict[str, Any]]:
    """(query fields, mutation fields), keyed by Python attribute name."""
    queries: dict[str, Any] = {}
    mutations: dict[str, Any] = {}
    for service in catalog.services():
        input_type = _input_type(service)
        attr = f"svc_{service.code.replace('-', '_').lower()}"
        if service.kind is ServiceKind.LOOKUP:
            resolver = _lookup_resolver(service, input_type, _result_type(service))
            target = queries
        else:
            resolver = _submit_resolver(service, input_type)
            target = mutations
        target[attr] = strawberry.field(
            resolver=resolver, name=service.graphql_field, description=_describe(service)
        )
    return queries, mutations
