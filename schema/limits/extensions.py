"""Every operation limit as strawberry extension factories, in the order they
apply: size before parsing, tokens while parsing, the rules in validation,
cost (and the principal's cost budget) before execution, time during it."""

from __future__ import annotations

from collections.abc import Callable

from strawberry.extensions import SchemaExtension

from schema.limits.aliases import aliases_rule
from schema.limits.config import OperationLimits
from schema.limits.cost import CostLimit
from schema.limits.depth import depth_rule
from schema.limits.directives import directives_rule
from schema.limits.document_size import DocumentSizeLimit
from schema.limits.field_repeats import field_repeats_rule
from schema.limits.root_fields import root_fields_rule
from schema.limits.time_budget import TimeBudget
from schema.limits.tokens import TokenLimit
from schema.limits.validation import ValidationLimits


def limit_extensions(limits: OperationLimits) -> list[Callable[[], SchemaExtension]]:
    # Rule classes are made once here; strawberry's own limiter extensions
    # would make a new class on every request.
    rules = [
        depth_rule(limits.depth),
        aliases_rule(limits.aliases),
        root_fields_rule(limits.root_fields),
        directives_rule(limits.directives),
        field_repeats_rule(limits.field_repeats),
    ]
    return [
        lambda: DocumentSizeLimit(limits.document_bytes),
        lambda: TokenLimit(limits.tokens),
        lambda: ValidationLimits(rules),
        lambda: CostLimit(limits.cost, limits.default_list_size),
        lambda: TimeBudget(limits.seconds),
    ]
