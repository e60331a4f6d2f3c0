"""Root fields per operation: each one is a separate back-end call here (a
lookup, an application), so their number is what fans out to the agencies.
Strawberry has no such limiter; fragments at the root count too."""

from __future__ import annotations

from typing import Any

from graphql import (
    FieldNode,
    FragmentSpreadNode,
    InlineFragmentNode,
    OperationDefinitionNode,
    SelectionSetNode,
    ValidationContext,
)
from graphql.validation import ASTValidationRule, ValidationRule

from schema.limits.error import limit_error


def _count(selections: SelectionSetNode, context: ValidationContext, seen: set[str]) -> int:
    count = 0
    for selection in selections.selections:
        if isinstance(selection, FieldNode):
            count += 1
        elif isinstance(selection, InlineFragmentNode):
            count += _count(selection.selection_set, context, seen)
        elif isinstance(selection, FragmentSpreadNode) and selection.name.value not in seen:
            seen.add(selection.name.value)
            fragment = context.get_fragment(selection.name.value)
            if fragment is not None:
                count += _count(fragment.selection_set, context, seen)
    return count


def root_fields_rule(maximum: int) -> type[ASTValidationRule]:
    class RootFieldsLimit(ValidationRule):
        def enter_operation_definition(self, node: OperationDefinitionNode, *_: Any) -> None:
            if _count(node.selection_set, self.context, set()) > maximum:
                self.report_error(limit_error("rootFields", maximum, [node]))

    return RootFieldsLimit
