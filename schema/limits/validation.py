"""Adds the limit rules to validation; when any limit is exceeded, only the
limit errors are answered (the rest of a rejected document is not worth
reporting, and reporting it is work an attacker controls)."""

from __future__ import annotations

from collections.abc import Iterator

from strawberry.extensions import AddValidationRules

from schema.limits.error import is_limit_error


class ValidationLimits(AddValidationRules):
    def on_validate(self) -> Iterator[None]:
        yield
        errors = self.execution_context.pre_execution_errors
        if errors and any(is_limit_error(error) for error in errors):
            # In place: strawberry already holds this list for the response.
            errors[:] = [error for error in errors if is_limit_error(error)]
