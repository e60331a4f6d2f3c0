"""What the API reveals about itself: introspection, and unexpected errors.

Masking keeps every error we raise on purpose (it has ``extensions.code``) and
every error about the request itself (graphql-core's parse, validation and
coercion messages, which name only what the client sent); it replaces an
unexpected exception's message, which may name tables, hosts or files.
"""

from __future__ import annotations

from collections.abc import Callable

from graphql import GraphQLError
from strawberry.extensions import DisableIntrospection, SchemaExtension

from schema.masking import MaskErrors

MASKED = "Unexpected error / Гэнэтийн алдаа гарлаа"


def is_unexpected(error: GraphQLError) -> bool:
    if (error.extensions or {}).get("code"):
        return False
    original = error.original_error
    return original is not None and not isinstance(original, GraphQLError)


def exposure_extensions(
    *, introspection: bool, mask_errors: bool
) -> list[Callable[[], SchemaExtension]]:
    extensions: list[Callable[[], SchemaExtension]] = []
    if not introspection:
        extensions.append(DisableIntrospection)
    if mask_errors:
        extensions.append(lambda: MaskErrors(should_mask_error=is_unexpected, error_message=MASKED))
    return extensions
