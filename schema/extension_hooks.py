"""Strawberry's schema-extension hooks, prepared once per schema.

For every operation strawberry looks at each extension's four hooks
(operation, parse, validate, execute) anew: is it overridden, is it a
generator, an async generator or a plain function, and then wraps it with
``contextlib.contextmanager``, whose ``functools.wraps`` copies the
function's metadata each time. With a dozen extensions that was a tenth of
a submission's CPU, for answers that depend on the classes alone.

Here the class-level part is done once per list of extension classes and
remembered by the schema; what remains per operation is what must be: one
context manager per hook, bound to that operation's extension instance.
Entering and leaving the hooks (the exit stack, exception propagation) is
strawberry's own code, unchanged.
"""

from __future__ import annotations

import contextlib
import functools
import inspect
from collections.abc import AsyncIterator, Callable, Iterator
from typing import Any

from strawberry.extensions import SchemaExtension
from strawberry.extensions.context import (
    ExecutingContextManager,
    ExtensionContextManagerBase,
    OperationContextManager,
    ParsingContextManager,
    ValidationContextManager,
    WrappedHook,
)
from strawberry.extensions.runner import SchemaExtensionsRunner
from strawberry.types import ExecutionContext
from strawberry.utils.await_maybe import await_maybe

# One hook of a schema's extensions: the position of the extension in the
# operation's list, its context manager factory, and whether that is async.
_Hook = tuple[int, Callable[[SchemaExtension], Any], bool]
_STAGES = ("on_operation", "on_parse", "on_validate", "on_execute")


def _prepare(cls: type[SchemaExtension], name: str) -> tuple[Callable[..., Any], bool] | None:
    """The context manager factory for one hook, or None when ``cls`` does not override it."""
    hook = getattr(cls, name)
    if hook is getattr(SchemaExtension, name):
        return None
    if inspect.isgeneratorfunction(hook):
        return contextlib.contextmanager(hook), False
    if inspect.isasyncgenfunction(hook):
        return contextlib.asynccontextmanager(hook), True
    if inspect.iscoroutinefunction(hook):

        @contextlib.asynccontextmanager
        async def awaited(extension: SchemaExtension) -> AsyncIterator[None]:
            await hook(extension)
            yield

        return awaited, True

    @contextlib.contextmanager
    def called(extension: SchemaExtension) -> Iterator[None]:
        hook(extension)
        yield

    return called, False


class HookPlans:
    """Which extensions hook which stage, worked out once per list of
    extension classes (one schema's factories always make the same list).

    Kept by the schema, so that it lives and dies with it: a module-level
    cache would keep every extension class ever seen alive, and with them
    whatever their closures hold (a validation cache's documents).
    """

    def __init__(self) -> None:
        self._plans: dict[tuple[type[SchemaExtension], ...], dict[str, list[_Hook]]] = {}

    def of(self, extensions: list[SchemaExtension]) -> dict[str, list[_Hook]]:
        classes = tuple(type(extension) for extension in extensions)
        plan = self._plans.get(classes)
        if plan is None:
            plan = self._plans[classes] = {
                stage: [
                    (position, *prepared)
                    for position, cls in enumerate(classes)
                    if (prepared := _prepare(cls, stage)) is not None
                ]
                for stage in _STAGES
            }
        return plan


class _PreparedHooks(ExtensionContextManagerBase):
    __slots__ = ()

    def __init__(self, hooks: list[WrappedHook]) -> None:
        # Strawberry's own asks every extension for its hook; these are known.
        self.hooks = hooks


class _Operation(_PreparedHooks, OperationContextManager):
    __slots__ = ()


class _Validation(_PreparedHooks, ValidationContextManager):
    __slots__ = ()


class _Parsing(_PreparedHooks, ParsingContextManager):
    __slots__ = ()


class _Executing(_PreparedHooks, ExecutingContextManager):
    __slots__ = ()


_DEFAULT_RESULTS = SchemaExtension.get_results


class PreparedExtensionsRunner(SchemaExtensionsRunner):
    """``Schema.create_extensions_runner``'s answer: the same hooks, in the
    same order, with the same semantics, prepared once per schema (given
    its ``plans``; without, once per operation)."""

    def __init__(
        self,
        execution_context: ExecutionContext,
        extensions: list[SchemaExtension] | None = None,
        plans: HookPlans | None = None,
    ) -> None:
        super().__init__(execution_context, extensions)
        self._plan = (plans or HookPlans()).of(self.extensions)

    def _hooks(self, stage: str) -> list[WrappedHook]:
        # Bound to this operation's own extension instances.
        hooks = []
        for position, factory, is_async in self._plan[stage]:
            extension = self.extensions[position]
            hooks.append(WrappedHook(extension, functools.partial(factory, extension), is_async))
        return hooks

    def operation(self) -> OperationContextManager:
        return _Operation(self._hooks("on_operation"))

    def validation(self) -> ValidationContextManager:
        return _Validation(self._hooks("on_validate"))

    def parsing(self) -> ParsingContextManager:
        return _Parsing(self._hooks("on_parse"))

    def executing(self) -> ExecutingContextManager:
        return _Executing(self._hooks("on_execute"))

    async def get_extensions_results(self, ctx: ExecutionContext) -> dict[str, Any]:
        # Strawberry awaits every extension's ``get_results``; the default
        # one answers an empty dict, and is not asked.
        data: dict[str, Any] = {}
        for extension in self.extensions:
            if type(extension).get_results is not _DEFAULT_RESULTS:
                data.update(await await_maybe(extension.get_results()))
        data.update(ctx.extensions_results)
        return data
