"""Directives: a total per document (GraphQL Armor's ``maxDirectives``), and
no directive twice in one place unless it is declared repeatable.

graphql-core checks repeats only for directives the schema knows, so
``__typename @aa @aa @aa ...`` gets one "unknown directive" error per copy --
graphql-cop's "directive overloading": the work grows with the attacker's
input. Strawberry has no directive limiter.
"""

from __future__ import annotations

from collections import Counter
from typing import Any

from graphql import DocumentNode, Node, ValidationContext
from graphql.validation import ASTValidationRule, ValidationRule

from schema.limits.error import limit_error


def directives_rule(maximum: int) -> type[ASTValidationRule]:
    class DirectivesLimit(ValidationRule):
        def __init__(self, context: ValidationContext) -> None:
            super().__init__(context)
            self.total = 0
            self.repeated = False

        def enter(self, node: Node, *_: Any) -> None:
            directives = getattr(node, "directives", None) or ()
            self.total += len(directives)
            counts = Counter(d.name.value for d in directives)
            for name, count in counts.items():
                known = self.context.schema.get_directive(name)
                if count > 1 and not (known and known.is_repeatable) and not self.repeated:
                    self.repeated = True
                    self.report_error(limit_error("directiveRepeats", 1, [node]))

        def leave_document(self, node: DocumentNode, *_: Any) -> None:
            if self.total > maximum:
                self.report_error(limit_error("directives", maximum))

    return DirectivesLimit
