"""Repeats of one field in one selection set: graphql-cop's "field
duplication" (``__typename`` 500 times). Identical fields are valid GraphQL and
are merged into one answer, so a repeat buys a client nothing, but each one is
parsed, validated pairwise against the others and costed. The token limit lets
~500 through; the root-field limit catches them only at the top level.

A field is identified by its response name (alias or name) and the type it is
selected on. Inline fragments and fragment spreads are merged into the
selection set they are in, as execution merges them, so that
``... { __typename } ... { __typename }`` or ``...F ...F`` count too; fields
on different types of a union (``... on A { id } ... on B { id }``) do not.
Strawberry and GraphQL Armor have no such limiter.
"""

from __future__ import annotations

from collections import Counter
from typing import Any

from graphql import (
    FieldNode,
    FragmentSpreadNode,
    GraphQLNamedType,
    InlineFragmentNode,
    SelectionSetNode,
    ValidationContext,
)
from graphql.validation import ASTValidationRule, ValidationRule

from schema.limits.error import limit_error

Key = tuple[str | None, str]  # (type condition, response name)


class _Counter:
    def __init__(self, context: ValidationContext) -> None:
        self.context = context
        # A fragment's counts are made once: fragments spreading fragments
        # would otherwise take exponential time to add up.
        self.fragments: dict[str, Counter[Key]] = {}

    def selections(self, node: SelectionSetNode, on: str | None) -> Counter[Key]:
        counts: Counter[Key] = Counter()
        for selection in node.selections:
            if isinstance(selection, FieldNode):
                name = selection.alias or selection.name
                counts[(on, name.value)] += 1
            elif isinstance(selection, InlineFragmentNode):
                condition = selection.type_condition
                inner = condition.name.value if condition else on
                counts.update(self.selections(selection.selection_set, inner))
            elif isinstance(selection, FragmentSpreadNode):
                counts.update(self.fragment(selection.name.value))
        return counts

    def fragment(self, name: str) -> Counter[Key]:
        if name not in self.fragments:
            self.fragments[name] = Counter()  # a cycle (refused by validation) adds nothing
            fragment = self.context.get_fragment(name)
            if fragment is not None:
                on = fragment.type_condition.name.value
                self.fragments[name] = self.selections(fragment.selection_set, on)
        return self.fragments[name]


def field_repeats_rule(maximum: int) -> type[ASTValidationRule]:
    class FieldRepeatsLimit(ValidationRule):
        def __init__(self, context: ValidationContext) -> None:
            super().__init__(context)
            self.counter = _Counter(context)
            self.reported = False

        def enter_selection_set(self, node: SelectionSetNode, *_: Any) -> None:
            if self.reported:
                return
            parent: GraphQLNamedType | None = self.context.get_parent_type()
            counts = self.counter.selections(node, parent.name if parent else None)
            if counts and max(counts.values()) > maximum:
                # One error, as for the other limits: 500 copies are not 500 errors.
                self.reported = True
                self.report_error(limit_error("fieldRepeats", maximum, [node]))

    return FieldRepeatsLimit
