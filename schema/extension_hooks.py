"""Strawberry's schema-extension hooks, prepared once per extension class.

For every operation strawberry looks at each extension's four hooks
(operation, parse, validate, execute) anew: is it overridden, is it a
generator, an async generator or a plain function, and then wraps it with
``contextlib.contextmanager``, whose ``functools.wraps`` copies the
function's metadata each time. With a dozen extensions that was a tenth of
a submission's CPU, for answers that depend on the class alone.

Here the class-level part is done once and remembered; what remains per
operation is what must be: one context manager per hook, bound to that
operation's extension instance. Entering and leaving the hooks (the exit
stack, exception propagation) is strawberry's own code, unchanged.
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

# (extension class, hook name) -> (context manager factory, is async), or
# None when the class does not override that hook.
_Prepared = tuple[Callable[[SchemaExtension], Any], bool] | None
_prepared: dict[tuple[type[SchemaExtension], str], _Prepared] = {}


def _prepare(cls: type[SchemaExtension], name: str) -> _Prepared:
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


class _PreparedHooks(ExtensionContextManagerBase):
    __slots__ = ()

    def get_hook(self, extension: SchemaExtension) -> WrappedHook | None:
        key = (type(extension), self.HOOK_NAME)
        try:
            prepared = _prepared[key]
        except KeyError:
            prepared = _prepared[key] = _prepare(*key)
        if prepared is None:
            return None
        factory, is_async = prepared
        return WrappedHook(extension, functools.partial(factory, extension), is_async)


class _Operation(_PreparedHooks, OperationContextManager):
    __slots__ = ()


class _Validation(_PreparedHooks, ValidationContextManager):
    __slots__ = ()


class _Parsing(_PreparedHooks, ParsingContextManager):
    __slots__ = ()


class _Executing(_PreparedHooks, ExecutingContextManager):
    __slots__ = ()


class PreparedExtensionsRunner(SchemaExtensionsRunner):
    """``Schema.create_extensions_runner``'s answer: the same hooks, in the
    same order, with the same semantics, prepared once per class."""

    def operation(self) -> OperationContextManager:
        return _Operation(self.extensions)

    def validation(self) -> ValidationContextManager:
        return _Validation(self.extensions)

    def parsing(self) -> ParsingContextManager:
        return _Parsing(self.extensions)

    def executing(self) -> ExecutingContextManager:
        return _Executing(self.extensions)
