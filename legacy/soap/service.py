"""Build an agency's spyne SOAP service from its catalog bindings.

One operation per LOOKUP binding (typed request and response elements, named
as the back end names them), one submit operation per APPLICATION binding
(its fields plus ``idempotencyKey``, answering ``reference`` and
``status``), and ``getApplicationStatus``. Every operation declares the XYP
headers, so the WSDL tells clients what to send.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any, Protocol

from gateway.catalog.model import Agency, FieldType, Service, ServiceKind
from legacy.soap._spyne import (
    Application,
    Boolean,
    ComplexModel,
    Date,
    Decimal,
    Integer,
    ServiceBase,
    Soap11,
    Unicode,
    XmlData,
    rpc,
)

STATUS_OPERATION = "getApplicationStatus"
HEADER_NAMES = ("accessToken", "timeStamp", "signature")

Fields = Sequence[tuple[str, FieldType]]


class Desk(Protocol):
    """What the generated service asks of the agency behind it."""

    def admit(self, in_header: Any) -> None: ...
    def lookup(self, operation: str, request: dict[str, Any], results: Fields) -> list[Any]: ...
    def submit(self, operation: str, request: dict[str, Any], key: str) -> tuple[str, str]: ...
    def status(self, reference: str) -> tuple[str, str | None]: ...


def namespace(agency: Agency) -> str:
    """The dialect's ``namespace`` if the catalog names one."""
    return str(agency.backend.dialect.get("namespace") or f"urn:ub:{agency.code.lower()}:ws")


def build_application(agency: Agency, desk: Desk) -> Any:
    tns = namespace(agency)
    headers = tuple(_header_type(tns, name) for name in HEADER_NAMES)
    methods: dict[str, Any] = {}
    signatures: dict[str, tuple[Any, ...]] = {}
    for service in agency.services:
        op = service.binding.operation
        fields = _request_fields(service)
        results: Fields = ()
        if service.kind is ServiceKind.LOOKUP:
            kinds = {r.name: r.type for r in service.result}
            results = [(backend, kinds[name]) for name, backend in service.binding.response.items()]
        signature = (service.kind, tuple(fields), tuple(results))
        if op in signatures:
            if signatures[op] != signature:
                raise ValueError(f"{service.code}: {op} is bound twice with different shapes")
            continue
        signatures[op] = signature
        if service.kind is ServiceKind.LOOKUP:
            methods[op] = _lookup(desk, op, fields, results, headers)
        else:
            methods[op] = _submit(desk, op, fields, headers)
    if STATUS_OPERATION in methods:
        raise ValueError(f"{agency.code}: a binding uses the reserved name {STATUS_OPERATION}")
    methods[STATUS_OPERATION] = _status(desk, headers)
    service_class = type(f"{agency.code}Service", (ServiceBase,), methods)
    return Application(
        [service_class],
        tns=tns,
        name=f"{agency.code}Service",
        in_protocol=Soap11(validator="lxml"),
        out_protocol=Soap11(),
    )


def _header_type(tns: str, name: str) -> Any:
    # A simple-content complex type because spyne declares no global element
    # for a simple type, and a header part must reference one.
    body = {"__namespace__": tns, "__type_name__": name, "value": XmlData(Unicode)}
    return type(name, (ComplexModel,), body)


def _request_fields(service: Service) -> list[tuple[str, FieldType]]:
    kinds = {f.name: f.type for f in service.form}
    return [(backend, kinds[form]) for backend, form in service.binding.request.items()]


def _request_type(kind: FieldType) -> Any:
    match kind:
        case FieldType.DATE:
            return Date
        case FieldType.NUMBER | FieldType.AMOUNT:
            return Decimal  # a form NUMBER may carry a fraction
        case FieldType.BOOLEAN:
            return Boolean
        case _:
            return Unicode


def _response_type(kind: FieldType) -> Any:
    match kind:
        case FieldType.DATE:
            return Date
        case FieldType.NUMBER:
            return Integer
        case FieldType.AMOUNT:
            return Decimal
        case FieldType.BOOLEAN:
            return Boolean
        case _:
            return Unicode


def _returns(names: Sequence[str], types: Sequence[Any]) -> dict[str, Any]:
    if len(names) == 1:
        return {"_returns": types[0], "_out_variable_name": names[0]}
    return {"_returns": tuple(types), "_out_variable_names": tuple(names)}


def _lookup(desk: Desk, op: str, fields: Fields, results: Fields, headers: Any) -> Any:
    names = [name for name, _ in fields]

    def handler(ctx: Any, *args: Any) -> Any:
        desk.admit(ctx.in_header)
        values = desk.lookup(op, dict(zip(names, args, strict=True)), results)
        return values[0] if len(values) == 1 else tuple(values)

    out = _returns([n for n, _ in results], [_response_type(k) for _, k in results])
    return _rpc(op, handler, [_request_type(k) for _, k in fields], names, headers, out)


def _submit(desk: Desk, op: str, fields: Fields, headers: Any) -> Any:
    names = [name for name, _ in fields]

    def handler(ctx: Any, *args: Any) -> Any:
        desk.admit(ctx.in_header)
        *values, key = args
        return desk.submit(op, dict(zip(names, values, strict=True)), key)

    key_type = Unicode(min_occurs=1, nillable=False, min_len=1)
    types = [*(_request_type(k) for _, k in fields), key_type]
    out = _returns(["reference", "status"], [Unicode, Unicode])
    return _rpc(op, handler, types, [*names, "idempotencyKey"], headers, out)


def _status(desk: Desk, headers: Any) -> Any:
    def handler(ctx: Any, reference: str) -> Any:
        desk.admit(ctx.in_header)
        return desk.status(reference)

    ref_type = Unicode(min_occurs=1, nillable=False, min_len=1)
    out = _returns(["status", "note"], [Unicode, Unicode])
    return _rpc(STATUS_OPERATION, handler, [ref_type], ["reference"], headers, out)


def _rpc(
    op: str,
    handler: Callable[..., Any],
    types: list[Any],
    names: list[str],
    headers: Any,
    out: Any,
) -> Any:
    # spyne keys methods by function name; all handlers here are called "handler".
    handler.__name__ = handler.__qualname__ = op
    return rpc(*types, _args=names, _in_header=headers, **out)(handler)
