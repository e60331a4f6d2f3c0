"""Parse each distinct document once.

Written here rather than using strawberry's ``ParserCache`` because that one
raises a syntax error straight out of its hook, past strawberry's error
handling (a 500 instead of a GraphQL error, and no coded token-limit error).
This cache keeps only documents that parse; anything else falls through to
strawberry's own parse, which reports it as usual.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator
from functools import lru_cache
from typing import Any

from graphql import DocumentNode, GraphQLError, parse
from strawberry.extensions import SchemaExtension, ValidationCache

MAXSIZE = 1024


@lru_cache(maxsize=MAXSIZE)
def _parse(query: str, **options: Any) -> DocumentNode:
    return parse(query, **options)


class DocumentCache(SchemaExtension):
    def on_parse(self) -> Iterator[None]:
        context = self.execution_context
        if context.query is not None and context.graphql_document is None:
            # On a syntax error strawberry parses again and reports it properly.
            with contextlib.suppress(GraphQLError):
                context.graphql_document = _parse(context.query, **context.parse_options)
        yield


def validation_cache(maxsize: int = MAXSIZE) -> Callable[[], SchemaExtension]:
    """strawberry's ``ValidationCache`` with a cache of this schema's own.

    strawberry keeps one module-level cache whose keys hold the schema, so
    every schema ever built (one per app; tests build hundreds) stays alive
    and the heap, and every full garbage collection, keeps growing. Here the
    cache lives and dies with the extension factory, i.e. with the app.
    """
    from strawberry.schema.schema import validate_document

    cached = lru_cache(maxsize=maxsize)(validate_document)

    class _ValidationCache(ValidationCache):
        def __init__(self) -> None:
            super().__init__(maxsize=maxsize)
            self.cached_validate_document = cached

    return _ValidationCache
