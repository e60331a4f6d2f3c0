"""DataLoader batching per agency: the LOOKUPs one GraphQL operation makes
of an agency whose back end answers several in one call (a SQL agency: one
statement) go to it as one call.

strawberry's DataLoader collects them: the root fields of a query start one
after the other in the same turn of the event loop, and every load made
before the loop's next turn joins the batch. One loader per agency and
registry (a sandbox app's lookups go to the sandbox, never batched with
real ones), held by the request's context, so nothing crosses principals.

Only for an agency that the operation's root fields look up more than once
(``asked_again``, from the document and its variables): a loader's batch
starts a turn or two of the loop later than a direct call, and a lone
lookup gains nothing from waiting. Worse, its data-access row then missed
the commit that the operation's other rows shared (gateway/group_commit.py):
with its SQL leg sent through the loader, the fan-out query cost 29 % more
CPU (docs/performance.md, "DataLoader batching per agency").

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
from collections import Counter
from collections.abc import Hashable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from graphql import (
    FieldNode,
    FragmentDefinitionNode,
    FragmentSpreadNode,
    InlineFragmentNode,
    SelectionSetNode,
    VariableNode,
)
from strawberry import Info
from strawberry.dataloader import DataLoader

from auth.audit.model import Access
from auth.audit.record import AccessLog, RowsWhenSent
from connectors.errors import ConnectorError
from connectors.registry import ConnectorRegistry, RecordNotFound
from gateway.catalog.model import Service, ServiceKind

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


def asked_again(info: Info) -> frozenset[str]:
    """The agencies that more than one of the operation's root fields looks
    up: typed LOOKUP fields, and ``lookup`` by its ``serviceCode``, fragments
    included. ``@skip`` and ``@include`` are not read: a field they leave out
    only makes a batch of one, which costs a little and changes no answer."""
    counted: Counter[str] = Counter()
    catalog = info.context.services.catalog
    # graphql-core's info: strawberry's has no public way to the fragments.
    fragments = info._raw_info.fragments
    for node in _root_fields(info.operation.selection_set, fragments, set()):
        name = node.name.value
        service = catalog.service_by_field(name)
        if service is None and name == "lookup":
            code = _argument(node, "serviceCode", info.variable_values)
            service = catalog.service(code) if isinstance(code, str) else None
        if service is not None and service.kind is ServiceKind.LOOKUP:
            counted[service.agency_code] += 1
    return frozenset(agency for agency, times in counted.items() if times > 1)


def _root_fields(
    selections: SelectionSetNode, fragments: Mapping[str, FragmentDefinitionNode], seen: set[str]
) -> Iterator[FieldNode]:
    for node in selections.selections:
        if isinstance(node, FieldNode):
            yield node
        elif isinstance(node, InlineFragmentNode):
            yield from _root_fields(node.selection_set, fragments, seen)
        elif isinstance(node, FragmentSpreadNode) and node.name.value not in seen:
            seen.add(node.name.value)  # validation forbids cycles; a repeat adds nothing
            fragment = fragments.get(node.name.value)
            if fragment is not None:
                yield from _root_fields(fragment.selection_set, fragments, seen)


def _argument(node: FieldNode, name: str, variables: Mapping[str, Any]) -> object:
    for argument in node.arguments or ():
        if argument.name.value == name:
            value = argument.value
            if isinstance(value, VariableNode):
                return variables.get(value.name.value)
            return getattr(value, "value", None)
    return None


class LookupBatches:
    """The loaders of one request (or WebSocket), made as they are first needed."""

    def __init__(self, access_log: AccessLog) -> None:
        self._access_log = access_log
        self._loaders: dict[tuple[int, str], DataLoader[PendingLookup, dict[str, Any]]] = {}
        # For the operation last asked about and its variables: a WebSocket's
        # context sees several, one after the other.
        self._asked_again: tuple[object, object, frozenset[str]] = (None, None, frozenset())

    def worth_it(self, info: Info, agency: str) -> bool:
        """Whether this operation looks ``agency`` up more than once."""
        operation, variables, again = self._asked_again
        if operation is not info.operation or variables is not info.variable_values:
            again = asked_again(info)
            self._asked_again = (info.operation, info.variable_values, again)
        return agency in again

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
