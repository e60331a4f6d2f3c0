"""The catalog's data model: what one agency TOML file in ``catalog/`` may say.

Pydantic validates the files; everything here is immutable once loaded.
Python attribute names are snake_case; the TOML keys are the same names.
"""

from __future__ import annotations

import re
from enum import StrEnum
from typing import Annotated, Any

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator


class _Frozen(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class Text(_Frozen):
    """A user-facing text in Mongolian (Cyrillic) and English."""

    mn: Annotated[str, Field(min_length=1)]
    en: Annotated[str, Field(min_length=1)]


class ServiceKind(StrEnum):
    LOOKUP = "LOOKUP"
    APPLICATION = "APPLICATION"


class BackendKind(StrEnum):
    SOAP = "SOAP"
    REST = "REST"
    SQL = "SQL"
    FILE = "FILE"


class FieldType(StrEnum):
    TEXT = "TEXT"
    NUMBER = "NUMBER"
    AMOUNT = "AMOUNT"
    DATE = "DATE"
    BOOLEAN = "BOOLEAN"
    ENUM = "ENUM"
    REGISTER_NUMBER = "REGISTER_NUMBER"
    COMPANY_NUMBER = "COMPANY_NUMBER"
    PHONE = "PHONE"
    EMAIL = "EMAIL"
    PARCEL_NUMBER = "PARCEL_NUMBER"
    PLATE_NUMBER = "PLATE_NUMBER"


class Output(StrEnum):
    CERTIFICATE = "CERTIFICATE"
    PERMIT = "PERMIT"
    LICENSE = "LICENSE"
    DECISION = "DECISION"
    RECEIPT = "RECEIPT"
    CONCLUSION = "CONCLUSION"
    REFERENCE = "REFERENCE"
    MAP = "MAP"
    COPY = "COPY"
    INFORMATION = "INFORMATION"
    PAYMENT = "PAYMENT"
    REGISTRATION = "REGISTRATION"


_NAME = r"^[a-z][A-Za-z0-9]*$"
_CODE = re.compile(r"^(?P<agency>[A-Z]{2,5})-\d{3}$")


class Option(_Frozen):
    value: Annotated[str, Field(pattern=r"^[A-Z][A-Z0-9_]*$")]
    label: Text


class FormField(_Frozen):
    """One field of a service's form, with every rule the server enforces."""

    name: Annotated[str, Field(pattern=_NAME)]
    type: FieldType
    required: bool = True
    label: Text
    pattern: str | None = None
    min: float | None = None
    max: float | None = None
    max_length: Annotated[int | None, Field(ge=1)] = None
    options: tuple[Option, ...] = ()

    @model_validator(mode="after")
    def _coherent(self) -> FormField:
        if self.type is FieldType.ENUM and not self.options:
            raise ValueError(f"field {self.name}: ENUM needs options")
        if self.type is not FieldType.ENUM and self.options:
            raise ValueError(f"field {self.name}: only ENUM fields take options")
        if self.pattern is not None:
            try:
                re.compile(self.pattern)
            except re.error as exc:
                raise ValueError(f"field {self.name}: bad pattern: {exc}") from exc
        if self.min is not None and self.max is not None and self.min > self.max:
            raise ValueError(f"field {self.name}: min > max")
        return self


class ResultField(_Frozen):
    """One field of a LOOKUP's typed result."""

    name: Annotated[str, Field(pattern=_NAME)]
    type: FieldType
    label: Text


class Binding(_Frozen):
    """How a service maps onto its agency's back end.

    ``request`` maps back-end field names to form field names;
    ``response`` maps result field names to back-end field names.
    Both are validated against the form and result at load time, so a
    mapping error names the service and the field.
    """

    operation: Annotated[str, Field(min_length=1)]
    request: dict[str, str] = Field(default_factory=dict)
    response: dict[str, str] = Field(default_factory=dict)


class Service(_Frozen):
    code: str
    kind: ServiceKind
    graphql_field: Annotated[str, Field(pattern=_NAME)]
    category: Annotated[str, Field(pattern=r"^[a-z][a-z_]*$")]
    name: Text
    description: Text
    fee: Annotated[int, Field(ge=0)] = 0
    processing_days: Annotated[int, Field(ge=0)] = 0
    required_documents: tuple[Text, ...] = ()
    output: Output
    form: tuple[FormField, ...]
    result: tuple[ResultField, ...] = ()
    binding: Binding
    # True when the agency's back end keeps no workflow of its own for this
    # APPLICATION (it only files what it receives): the agency's officers then
    # move its status in the gateway (``updateApplicationStatus``).
    gateway_workflow: bool = False

    @field_validator("code")
    @classmethod
    def _code(cls, value: str) -> str:
        if not _CODE.match(value):
            raise ValueError("code must look like LAND-003")
        return value

    @property
    def agency_code(self) -> str:
        match = _CODE.match(self.code)
        assert match is not None  # checked by the validator
        return match["agency"]

    @model_validator(mode="after")
    def _coherent(self) -> Service:
        names = [f.name for f in self.form]
        if len(set(names)) != len(names):
            raise ValueError("form field names repeat")
        if not self.form:
            raise ValueError("form has no fields")
        if self.kind is ServiceKind.LOOKUP and not self.result:
            raise ValueError("a LOOKUP needs result fields")
        if self.kind is ServiceKind.APPLICATION and self.result:
            raise ValueError("an APPLICATION has no result fields")
        if self.gateway_workflow and self.kind is not ServiceKind.APPLICATION:
            raise ValueError("only an APPLICATION can have gateway_workflow")
        for backend_field, form_field in self.binding.request.items():
            if form_field not in names:
                raise ValueError(f"binding.request.{backend_field}: no form field {form_field!r}")
        unmapped = set(names) - set(self.binding.request.values())
        if unmapped:
            raise ValueError(f"binding.request: form fields not mapped: {sorted(unmapped)}")
        result_names = {f.name for f in self.result}
        for result_field in self.binding.response:
            if result_field not in result_names:
                raise ValueError(f"binding.response.{result_field}: no result field")
        missing = result_names - set(self.binding.response)
        if missing:
            raise ValueError(f"binding.response: result fields not mapped: {sorted(missing)}")
        return self


class Backend(_Frozen):
    """The agency's legacy system: its kind and its protocol dialect.

    Addresses are deployment configuration (settings), not catalog data.
    ``dialect`` holds kind-specific protocol quirks, e.g. for REST
    ``date_format = "%Y.%m.%d"``, ``amounts_as_strings = true``,
    ``paging = "page" | "cursor"``, ``api_key_header = "X-Api-Key"``;
    for FILE ``format = "fixed" | "csv"``, ``encoding = "cp1251"``.
    """

    kind: BackendKind
    dialect: dict[str, Any] = Field(default_factory=dict)


class Agency(_Frozen):
    code: Annotated[str, Field(pattern=r"^[A-Z]{2,5}$")]
    name: Text
    description: Text
    backend: Backend
    services: tuple[Service, ...]

    @model_validator(mode="after")
    def _own_services(self) -> Agency:
        for service in self.services:
            if service.agency_code != self.code:
                raise ValueError(f"service {service.code} does not belong to agency {self.code}")
        return self
