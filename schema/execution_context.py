"""graphql-core's executor without the reference cycle it builds per request.

graphql-core 3.3's executor keeps ``async_helpers``, a tuple of two of its
own bound methods, so every execution is a reference cycle: executor ->
helpers -> bound method -> executor. Reference counting cannot free a cycle,
so each request's executor, its variables, its collected errors, the
request's ``Context`` and principal (about 29 objects per LOOKUP) waited for
the cyclic collector. Measured in the bench server at ~600 LOOKUPs/s: every
young-generation collection found ~3,800 such objects to free, and took
4-6 ms of the event loop each time, twice a second (docs/performance-history.md).

Here the helpers hold their methods weakly, so nothing points back at the
executor and it is freed the moment its request is answered. A resolver can
only call the helpers while its execution runs, and then the executor is
alive: the running coroutines hold it.
"""

from __future__ import annotations

import weakref
from collections.abc import Callable
from typing import Any

from graphql import GraphQLResolveInfoHelpers
from strawberry.schema.schema import StrawberryGraphQLCoreExecutionContext


class AcyclicExecutionContext(StrawberryGraphQLCoreExecutionContext):
    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.async_helpers = GraphQLResolveInfoHelpers(
            gather=_weakly(self.gather_async_work), track=_weakly(self.track_async_work)
        )


def _weakly(method: Callable[..., Any]) -> Callable[..., Any]:
    ref = weakref.WeakMethod(method)

    def call(*args: Any) -> Any:
        bound = ref()
        if bound is None:
            raise RuntimeError("the execution these helpers belong to has ended")
        return bound(*args)

    return call
