"""Time: each operation gets a budget, ``KHAALGA_MAX_SECONDS`` from the start
of its execution. A root field still running when it is spent answers
``OPERATION_LIMIT`` (``limit: "time"``) and the others keep their answers,
so one slow agency in a fan-out costs that field only.

Only root fields are bounded: they are where the agencies are called and
the database is written; the fields below them are already-fetched data.
Subscription fields are not bounded either: a subscription is a stream
meant to stay open. A submission cut off here is not lost: its group
commit runs on in a task of its own (gateway/group_commit.py), and a retry
with the same idempotency key finds it.

Two halves. ``TimeBudget``, a schema extension, starts the clock in
``on_execute`` and keeps the deadline in a context variable for the length
of the execution. ``RootFieldDeadline``, a field extension that
``bound_root_fields`` puts on the root fields of Query and Mutation when
the schema is built, holds each of those fields to it. A ``resolve`` hook on
the schema extension would do both in one place, but strawberry then wraps
every field of every response in the extension chain, only to find that
nearly all of them are not root fields: a millisecond (a tenth of the
execution) on a page of 50 services with their forms, 1,650 fields.

The deadline is a context variable, not a field of ``Context``: a WebSocket
has one ``Context`` for all of its operations, and each needs its own clock.
Each operation executes in a task of its own (a request's, or one per
operation on a socket), and the tasks graphql-core starts for root fields
copy the variable with the rest of the context.
"""

from __future__ import annotations

import asyncio
import inspect
from collections.abc import Awaitable, Iterator
from contextvars import ContextVar
from dataclasses import dataclass
from typing import Any

from strawberry.extensions import SchemaExtension
from strawberry.extensions.field_extension import (
    AsyncExtensionResolver,
    FieldExtension,
    SyncExtensionResolver,
)
from strawberry.types import Info
from strawberry.types.base import StrawberryObjectDefinition
from strawberry.types.graphql import OperationType

from schema.limits.error import limit_error


@dataclass(frozen=True, slots=True)
class _Budget:
    deadline: float  # on the event loop's clock
    seconds: int


# None outside an execution, and in a schema built without ``TimeBudget``:
# its root fields then run unbounded.
_BUDGET: ContextVar[_Budget | None] = ContextVar("khaalga_time_budget", default=None)


class TimeBudget(SchemaExtension):
    def __init__(self, seconds: int) -> None:
        self.seconds = seconds

    def on_execute(self) -> Iterator[None]:
        if self.execution_context.operation_type is OperationType.SUBSCRIPTION:
            yield  # its fields are not bounded; and its stream may outlive this hook
            return
        deadline = asyncio.get_running_loop().time() + self.seconds
        token = _BUDGET.set(_Budget(deadline, self.seconds))
        try:
            yield
        finally:
            _BUDGET.reset(token)


class RootFieldDeadline(FieldExtension):
    """Holds a root field to its operation's deadline, if there is one."""

    def resolve(self, next_: SyncExtensionResolver, source: Any, info: Info, **kwargs: Any) -> Any:
        # Without this, strawberry would make every sync root field async.
        result = next_(source, info, **kwargs)
        budget = _BUDGET.get()
        if budget is None or not inspect.isawaitable(result):
            return result
        return _bounded(result, budget)

    async def resolve_async(
        self, next_: AsyncExtensionResolver, source: Any, info: Info, **kwargs: Any
    ) -> Any:
        budget = _BUDGET.get()
        if budget is None:
            return await next_(source, info, **kwargs)
        return await _bounded(next_(source, info, **kwargs), budget)


async def _bounded(result: Awaitable[Any], budget: _Budget) -> Any:
    timeout = asyncio.timeout_at(budget.deadline)
    try:
        async with timeout:
            return await result
    except TimeoutError as exc:
        if not timeout.expired():
            raise  # the field's own timeout, not the budget's
        raise limit_error("time", budget.seconds) from exc


def bound_root_fields(root: type) -> None:
    """Put ``RootFieldDeadline`` on each field of a Query or Mutation type.

    Last, so that it is the outermost of the field's extensions and the
    permission check is inside the budget too. Fields inherited from a base
    class are the base's own field objects, shared by every schema built
    from it: one that already has the extension keeps it, and a second build
    adds nothing (the extension holds no state, so sharing it is harmless).
    """
    definition: StrawberryObjectDefinition = root.__strawberry_definition__  # type: ignore[attr-defined]
    for field in definition.fields:
        if not any(isinstance(e, RootFieldDeadline) for e in field.extensions):
            field.extensions.append(RootFieldDeadline())
