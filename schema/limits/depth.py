"""Depth: strawberry's ``QueryDepthLimiter`` rule, coded (see coded.py).

Like GraphQL Armor it does not count introspection fields; circular
introspection is graphql-core's ``MaxIntrospectionDepthRule``, which is among
the specified rules strawberry always runs.
"""

from __future__ import annotations

from graphql.validation import ASTValidationRule
from strawberry.extensions.query_depth_limiter import create_validator

from schema.limits.coded import coded


def depth_rule(maximum: int) -> type[ASTValidationRule]:
    return coded(create_validator(maximum, should_ignore=None), "depth", maximum)
