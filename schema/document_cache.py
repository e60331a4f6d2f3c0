"""Parse each distinct document once.

Written here rather than using strawberry's ``ParserCache`` because that one
raises a syntax error straight out of its hook, past strawberry's error
handling (a 500 instead of a GraphQL error, and no coded token-limit error).
This cache keeps only documents that parse; anything else falls through to
strawberry's own parse, which reports it as usual.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from functools import lru_cache
from typing import Any

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
