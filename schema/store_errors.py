"""The gateway's own database failing transiently answers ``UNAVAILABLE``.

SQLite's write lock held past the busy timeout, PostgreSQL unreachable, over
its lock timeout or out of pooled connections: none of these is the client's
fault or a bug, and the client may retry; a submission retried with the same
idempotency key is filed once. Without this the error would be "unexpected":
masked in production and, in development, SQLAlchemy's text (the statement,
table names) shown whole. This is strawberry's MaskErrors, which already
walks every kind of result (plain, streamed, incremental), with a typed
replacement instead of its generic one.
"""

from __future__ import annotations

from graphql import GraphQLError
from sqlalchemy import exc as sa_exc
from strawberry.extensions import MaskErrors

from schema import errors

# OperationalError: locked, connection lost, lock or statement timeout.
# InterfaceError: the driver's connection is unusable. TimeoutError: the pool
# had no connection to lend in time.
_TRANSIENT = (sa_exc.OperationalError, sa_exc.InterfaceError, sa_exc.TimeoutError)


def is_store_unavailable(error: GraphQLError) -> bool:
    return isinstance(error.original_error, _TRANSIENT)


class StoreUnavailable(MaskErrors):
    def __init__(self) -> None:
        super().__init__(should_mask_error=is_store_unavailable)

    def anonymise_error(self, error: GraphQLError) -> GraphQLError:
        typed = errors.unavailable()
        return GraphQLError(
            typed.message,
            nodes=error.nodes,
            source=error.source,
            positions=error.positions,
            path=error.path,
            extensions=typed.extensions,
        )
