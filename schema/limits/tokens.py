"""Tokens: strawberry's ``MaxTokensLimiter`` (graphql-core stops parsing at
the limit), with its syntax error turned into the coded limit error."""

from __future__ import annotations

from collections.abc import Iterator

from graphql import GraphQLSyntaxError
from strawberry.extensions import MaxTokensLimiter

from schema.limits.error import limit_error


class TokenLimit(MaxTokensLimiter):
    def on_parse(self) -> Iterator[None]:
        yield
        for error in self.execution_context.pre_execution_errors or ():
            # The only syntax error that mentions tokens is the limit's:
            # "Document contains more than N tokens. Parsing aborted."
            if isinstance(error, GraphQLSyntaxError) and "tokens" in error.message:
                coded = limit_error("tokens", self.max_token_count)
                error.message, error.extensions = coded.message, coded.extensions
