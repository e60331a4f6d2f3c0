"""``applicationStatusChanged``: a citizen's app hears its application move.

Fed from the status history: a wake-up (``gateway.events``) only says that
something changed; the subscriber re-reads the application through the
store, scoped exactly like ``application(id)``, so someone else's
application looks missing here too.
"""

from __future__ import annotations

from collections.abc import AsyncGenerator

import strawberry

from auth.permissions import ApplicationReader
from gateway.applications import FINAL
from schema import errors, operations
from schema.access_log import record_application_reads
from schema.types import Application

# Subscribers re-read on this timer even without a wake-up, so a worker in
# another process without Redis still reaches them, only later.
RECHECK_SECONDS = 5.0


@strawberry.type
class Subscription:
    @strawberry.subscription(
        description="Each new status of one application / Өргөдлийн төлөв өөрчлөгдөхөд",
        permission_classes=[ApplicationReader],
    )
    async def application_status_changed(
        self, info: strawberry.Info, id: strawberry.ID
    ) -> AsyncGenerator[Application, None]:
        context = info.context
        principal = operations.require_authenticated(context)
        store = context.services.store
        app = await store.get(principal, str(id))
        if app is None:
            raise errors.not_found("Өргөдөл", "Application")
        seen = len(app.history)
        if app.status in FINAL:
            return
        async for _ in context.services.events.listen(app.id, RECHECK_SECONDS):
            app = await store.get(principal, str(id))
            if app is None:
                return
            if len(app.history) > seen:
                seen = len(app.history)
                await record_application_reads(context, [app], with_form=False)
                yield Application.of(app)
            if app.status in FINAL:
                return
