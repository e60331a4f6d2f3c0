"""GraphQL errors with stable ``extensions.code`` values and bilingual text.

BAD_USER_INPUT      invalid form; extensions.fields = {field: {mn, en}}
NOT_FOUND           unknown service, application or record
UNAUTHENTICATED     no token where one is needed
FORBIDDEN           authenticated, but not allowed; an app missing scopes: extensions.scopes
CONFLICT            idempotency key reused for another service; not cancellable
AGENCY_UNAVAILABLE  the agency's back end failed transiently; extensions.agency
AGENCY_REJECTED     the agency refused the request; extensions.agency
AGENCY_ERROR        the agency's answer did not fit the catalog mapping
UNAVAILABLE         the gateway's own database failed transiently; retry (a submission with
                    the same idempotency key is filed once) (schema/store_errors.py)

Raised before any resolver runs (schema/limits, gateway/persisted.py):

OPERATION_LIMIT     an operation limit; extensions.limit and extensions.max
PERSISTED_QUERY_NOT_FOUND, PERSISTED_QUERY_NOT_SUPPORTED, PERSISTED_QUERY_HASH_MISMATCH
UNTRUSTED_DOCUMENT  allow-list mode, and the document is not on the list
RATE_LIMITED        the principal's cost budget cannot pay for the operation (over HTTP
                    the answer is a 429 problem instead; gateway/rate_limit.py)
"""

from __future__ import annotations

from graphql import GraphQLError

from connectors.errors import BackendRejected, ConnectorError, MappingError, TransientError
from gateway.catalog.model import Text


def _error(code: str, mn: str, en: str, **extra: object) -> GraphQLError:
    return GraphQLError(f"{en} / {mn}", extensions={"code": code, **extra})


def bad_user_input(fields: dict[str, Text]) -> GraphQLError:
    return _error(
        "BAD_USER_INPUT",
        "Маягт буруу бөглөгдсөн: " + ", ".join(sorted(fields)),
        "The form is invalid: " + ", ".join(sorted(fields)),
        fields={name: {"mn": text.mn, "en": text.en} for name, text in fields.items()},
    )


def not_found(what_mn: str, what_en: str) -> GraphQLError:
    return _error("NOT_FOUND", f"{what_mn} олдсонгүй", f"{what_en} not found")


def unauthenticated() -> GraphQLError:
    return _error("UNAUTHENTICATED", "Нэвтэрч орно уу", "Authentication is required")


def forbidden(
    mn: str = "Энэ үйлдлийг хийх эрхгүй", en: str = "You may not do this"
) -> GraphQLError:
    return _error("FORBIDDEN", mn, en)


def missing_scopes(scopes: list[str]) -> GraphQLError:
    """An app's token lacks scopes; ``extensions.scopes`` lists them."""
    named = ", ".join(scopes)
    return _error(
        "FORBIDDEN",
        f"Аппын токенд дараах эрх (scope) алга: {named}",
        f"The app's token lacks the scope(s): {named}",
        scopes=scopes,
    )


def conflict(mn: str, en: str) -> GraphQLError:
    return _error("CONFLICT", mn, en)


def unavailable() -> GraphQLError:
    return _error(
        "UNAVAILABLE",
        "Систем түр ачаалалтай байна, дахин оролдоно уу",
        "The gateway is busy for a moment; please try again",
    )


def from_connector(error: ConnectorError) -> GraphQLError:
    agency = error.agency
    if isinstance(error, TransientError):
        return _error(
            "AGENCY_UNAVAILABLE",
            f"{agency} байгууллагын систем түр ажиллахгүй байна",
            f"The {agency} back end is unavailable",
            agency=agency,
        )
    if isinstance(error, BackendRejected):
        return _error(
            "AGENCY_REJECTED",
            f"{agency} байгууллага хүсэлтийг хүлээж авсангүй",
            f"The {agency} back end refused the request",
            agency=agency,
        )
    field = error.field if isinstance(error, MappingError) else None
    return _error(
        "AGENCY_ERROR",
        f"{agency} байгууллагын хариу танигдсангүй",
        f"The {agency} back end answered in an unexpected form",
        agency=agency,
        **({"field": field} if field else {}),
    )
