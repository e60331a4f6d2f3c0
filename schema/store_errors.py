"""The gateway's own database failing transiently answers ``UNAVAILABLE``.

SQLite's write lock held past the busy timeout, PostgreSQL unreachable, over
its lock timeout or out of pooled connections (gateway/db/failures.py
tells these from the rest): none of these is the client's fault or a bug,
and the client may retry; a submission retried with the same
idempotency key is filed once. Without this the error would be "unexpected":
masked in production and, in development, SQLAlchemy's text (the statement,
table names) shown whole. This is strawberry's MaskErrors, which already
walks every kind of result (plain, streamed, incremental), with a typed
replacement instead of its generic one.
"""

from __future__ import annotations

from graphql import GraphQLError
from sqlalchemy import exc as sa_exc

from gateway.db.failures import classify
from schema import errors
from schema.masking import MaskErrors


def is_store_unavailable(error: GraphQLError) -> bool:
    original = error.original_error
    if isinstance(original, sa_exc.TimeoutError):
        return True  # the pool had no connection to lend in time
    if isinstance(original, sa_exc.DBAPIError):
        # Only what is known to pass: SQLite's "no such table" is an
        # OperationalError too, and a bug must not read "try again".
        return original.connection_invalidated or classify(original) in ("unavailable", "timeout")
    return False


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
