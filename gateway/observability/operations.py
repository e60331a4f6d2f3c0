"""The strawberry extension that tells the request what GraphQL operation it
ran and how it went. Cheap on purpose: it hooks the operation, never each field."""

from __future__ import annotations

from collections.abc import Iterator, Sequence

from graphql import GraphQLError
from strawberry.extensions import SchemaExtension

from gateway.observability.request import current, operation_label

# Codes from schema/errors.py that mean the caller asked for something wrong
# or not allowed: answers, not faults.
_CLIENT_CODES = frozenset(
    {"BAD_USER_INPUT", "NOT_FOUND", "UNAUTHENTICATED", "FORBIDDEN", "CONFLICT", "RATE_LIMITED"}
)


def outcome_of(errors: Sequence[GraphQLError] | None) -> str:
    """ok | invalid (did not parse or validate) | client_error | agency_error | error.

    The worst error decides: an unexpected fault outranks an agency's, which
    outranks the caller's own mistake.
    """
    if not errors:
        return "ok"
    codes = [(e.extensions or {}).get("code") for e in errors]
    if all(code is None and error.path is None for code, error in zip(codes, errors, strict=True)):
        return "invalid"  # parse and validation errors carry neither a code nor a path
    if any(code is None for code in codes):
        return "error"
    if any(str(code).startswith("AGENCY_") for code in codes):
        return "agency_error"
    if all(code in _CLIENT_CODES for code in codes):
        return "client_error"
    return "error"


class OperationObserver(SchemaExtension):
    def on_operation(self) -> Iterator[None]:
        yield
        info = current()
        if info is None:  # executed outside the HTTP middleware (schema tests)
            return
        context = self.execution_context
        info.operation = operation_label(context.operation_name)
        if context.graphql_document is not None:
            try:
                info.operation_type = context.operation_type.value
            except RuntimeError:  # the named operation is not in the document
                info.operation_type = "none"
        result = context.result
        errors = result.errors if result is not None else context.pre_execution_errors
        info.outcome = outcome_of(errors)
