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

from cachetools import LRUCache
from graphql import DocumentNode, GraphQLError, parse
from strawberry.extensions import SchemaExtension

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
    """Validate each parsed document once, for this schema.

    Not strawberry's ``ValidationCache``, for two reasons. It keeps one
    module-level cache whose keys hold the schema, so every schema ever
    built (one per app; tests build hundreds) stays alive and the heap, and
    every full garbage collection, keeps growing; here the cache lives and
    dies with the extension factory, i.e. with the app. And its key hashes
    the document, which for a graphql-core AST walks every node on every
    request (a twentieth of a submission's CPU); ``DocumentCache`` above
    hands out one object per distinct text, so here the key is the object
    itself, kept alive by its entry so that its id cannot be reused.
    """
    from strawberry.schema.schema import validate_document

    entries: LRUCache[tuple[int, Any], tuple[DocumentNode, list[GraphQLError]]] = LRUCache(maxsize)

    class _ValidationCache(SchemaExtension):
        def on_validate(self) -> Iterator[None]:
            context = self.execution_context
            document, rules = context.graphql_document, context.validation_rules
            assert document is not None  # strawberry validates parsed documents only
            key = (id(document), rules)
            entry = entries.get(key)
            if entry is None or entry[0] is not document:
                errors = validate_document(context.schema._schema, document, rules)
                entry = entries[key] = (document, errors)
            context.pre_execution_errors = entry[1]
            yield

    return _ValidationCache
