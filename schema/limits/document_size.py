"""Document size in bytes, checked before parsing (after a persisted query's
text is known). Strawberry has none; its token limit does not see comments or
long string literals, which cost memory but no tokens."""

from __future__ import annotations

from collections.abc import Iterator

from strawberry.extensions import SchemaExtension

from schema.limits.error import limit_error


class DocumentSizeLimit(SchemaExtension):
    def __init__(self, max_bytes: int) -> None:
        self.max_bytes = max_bytes

    def on_operation(self) -> Iterator[None]:
        query = self.execution_context.query
        if query is not None and len(query.encode()) > self.max_bytes:
            # Raised before parsing: strawberry answers it as a request error.
            raise limit_error("documentBytes", self.max_bytes)
        yield
