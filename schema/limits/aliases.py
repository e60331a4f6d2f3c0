"""Aliases: strawberry's ``MaxAliasesLimiter`` rule, coded (see coded.py)."""

from __future__ import annotations

from graphql.validation import ASTValidationRule
from strawberry.extensions.max_aliases import create_validator

from schema.limits.coded import coded


def aliases_rule(maximum: int) -> type[ASTValidationRule]:
    return coded(create_validator(maximum), "aliases", maximum)
