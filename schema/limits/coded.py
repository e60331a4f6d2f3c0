"""Reuse strawberry's depth and alias walkers, with coded errors.

Strawberry's ``QueryDepthLimiter`` and ``MaxAliasesLimiter`` walk fragments
and guard against cycles well, but report plain messages (no
``extensions.code``, English only) and offer no hook to shape them. Their rules
are given a stand-in validation context here that turns whatever they report
into one ``OPERATION_LIMIT`` error: one, because a deep query would otherwise
get an error per deep branch, which is itself an amplification.
"""

from __future__ import annotations

from typing import Any, cast

from graphql import GraphQLError, ValidationContext
from graphql.validation import ASTValidationRule

from schema.limits.error import limit_error


class _Relabelling:
    def __init__(self, context: ValidationContext, limit: str, maximum: int) -> None:
        self._context = context
        self._limit = limit
        self._maximum = maximum
        self._reported = False

    def __getattr__(self, name: str) -> Any:
        return getattr(self._context, name)

    def report_error(self, error: GraphQLError) -> None:
        if not self._reported:
            self._reported = True
            self._context.report_error(limit_error(self._limit, self._maximum, error.nodes))


def coded(rule: type[ASTValidationRule], limit: str, maximum: int) -> type[ASTValidationRule]:
    class Coded(rule):  # type: ignore[valid-type, misc]  # a rule class made at run time
        def __init__(self, context: ValidationContext) -> None:
            super().__init__(cast(ValidationContext, _Relabelling(context, limit, maximum)))

    Coded.__name__ = f"{rule.__name__}Coded"
    return Coded
