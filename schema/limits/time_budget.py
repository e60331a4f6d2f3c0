"""Time: each operation gets a budget, ``KHAALGA_MAX_SECONDS`` from the start
of its execution. A root field still running when it is spent answers
``OPERATION_LIMIT`` (``limit: "time"``) and the others keep their answers,
so one slow agency in a fan-out costs that field only.

Only root fields are bounded: they are where the agencies are called and
the database is written; the fields below them are already-fetched data.
A submission cut off here is not lost: its group commit runs on in a task
of its own (gateway/group_commit.py), and a retry with the same
idempotency key finds it.
"""

from __future__ import annotations

import asyncio
import inspect
from collections.abc import Awaitable, Callable, Iterator
from typing import Any

from graphql import GraphQLResolveInfo
from strawberry.extensions import SchemaExtension
from strawberry.utils.await_maybe import AwaitableOrValue

from schema.limits.error import limit_error


class TimeBudget(SchemaExtension):
    def __init__(self, seconds: int) -> None:
        self.seconds = seconds
        self.deadline = 0.0

    def on_execute(self) -> Iterator[None]:
        self.deadline = asyncio.get_running_loop().time() + self.seconds
        yield

    def resolve(
        self,
        _next: Callable[..., Any],
        root: Any,
        info: GraphQLResolveInfo[Any],
        *args: str,
        **kwargs: Any,
    ) -> AwaitableOrValue[object]:
        result: object = _next(root, info, *args, **kwargs)
        if info.path.prev is not None or not inspect.isawaitable(result):
            return result  # nested and synchronous fields pay nothing
        return self._bounded(result)

    async def _bounded(self, result: Awaitable[Any]) -> Any:
        try:
            async with asyncio.timeout_at(self.deadline):
                return await result
        except TimeoutError as exc:
            raise limit_error("time", self.seconds) from exc
