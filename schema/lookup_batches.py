"""DataLoader batching per agency: the LOOKUPs one GraphQL operation makes
of an agency whose back end answers several in one call (a SQL agency: one
statement) go to it as one call.

strawberry's DataLoader collects them: the root fields of a query start one
after the other in the same turn of the event loop, and every load made
before the loop's next turn joins the batch. One loader per agency and
registry (a sandbox app's lookups go to the sandbox, never batched with
real ones), held by the request's context, so nothing crosses principals.

Without its cache: a WebSocket's context lives as long as the socket, and
a cache there would keep (and serve) answers from one operation to the
next. The same lookup asked twice in one batch (the same service and
form) is still sent and logged once, by ``_load``.

Every lookup's data-access rows are started as the batch leaves for the
agency and written while it works; no lookup's answer is handed out before
the batch's rows are stored (schema/operations.py says why).
"""

from __future__ import annotations

import asyncio
from collections.abc import Hashable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from strawberry.dataloader import DataLoader

from auth.audit.model import Access
from auth.audit.record import AccessLog, RowsWhenSent
from connectors.errors import ConnectorError
from connectors.registry import ConnectorRegistry, RecordNotFound
from gateway.catalog.model import Service

# A batch is one statement; past this many lookups, the next ones start another.
MAX_BATCH = 50

Answer = dict[str, Any] | RecordNotFound | ConnectorError


@dataclass(frozen=True, slots=True, eq=False)
class PendingLookup:
    service: Service
    form: Mapping[str, Any]
    """Validated and cleaned."""
    accesses: Sequence[Access]
    """The rows this lookup adds to the data-access log."""

    def same_as(self) -> Hashable:
        # repr: a cleaned form's values are str, int, float, bool, date or None.
        return self.service.code, repr(sorted(self.form.items()))


class LookupBatches:
    """The loaders of one request (or WebSocket), made as they are first needed."""

    def __init__(self, access_log: AccessLog) -> None:
        self._access_log = access_log
        self._loaders: dict[tuple[int, str], DataLoader[PendingLookup, dict[str, Any]]] = {}

    async def lookup(self, registry: ConnectorRegistry, pending: PendingLookup) -> dict[str, Any]:
        """The lookup's answer; raises its ``RecordNotFound`` or ``ConnectorError``."""
        key = (id(registry), pending.service.agency_code)
        loader = self._loaders.get(key)
        if loader is None:
            loader = self._loaders[key] = DataLoader(
                lambda batch: self._load(registry, batch), max_batch_size=MAX_BATCH, cache=False
            )
        # Shielded: a resolver cut off by its time budget must not cancel the
        # batch's future, which other lookups of the batch wait on.
        return await asyncio.shield(loader.load(pending))

    async def _load(self, registry: ConnectorRegistry, batch: list[PendingLookup]) -> list[Answer]:
        first: dict[Hashable, int] = {}
        sent: list[PendingLookup] = []
        places = []  # where each lookup's answer is in ``sent``'s
        for pending in batch:
            place = first.setdefault(pending.same_as(), len(sent))
            if place == len(sent):
                sent.append(pending)
            places.append(place)
        rows = RowsWhenSent(
            self._access_log, [access for pending in sent for access in pending.accesses]
        )
        try:
            answers: Sequence[Answer] = await registry.lookup_many(
                [(pending.service, pending.form) for pending in sent], sending=rows.sending
            )
        except (RecordNotFound, ConnectorError) as exc:
            answers = [exc] * len(sent)  # a batch of one raises its own
        except BaseException:
            rows.abandoned()
            raise
        await rows.stored()
        return [answers[place] for place in places]
