"""A request's objects are freed when it is answered, by reference counting.

Anything a request leaves in a reference cycle waits for the cyclic
collector, whose pauses stop the event loop for every request in flight
(schema/execution_context.py). These requests run with the collector off
and every collected object kept, then nothing of the gateway's, the
GraphQL engine's or the request's principal may be among them. (The test
client's own httpx objects are, and are not ours to judge.)"""

from __future__ import annotations

import collections
import gc

from gateway.catalog.loader import Catalog
from legacy.samples import sample_form
from tests.test_api import ALICE, SUBMIT, Api, as_citizen, form_of
from tests.test_api import api as api  # the fixture

OURS = ("auth.", "connectors.", "gateway.", "schema.", "graphql.", "strawberry.")
LOOKUP = "query($c: ID!, $i: JSON!) { lookup(serviceCode: $c, input: $i) }"


def _service(catalog: Catalog, kind: str) -> str:
    return next(s.code for s in catalog.services() if s.kind.value == kind)


def _ours(objects: list[object]) -> collections.Counter[str]:
    names = (f"{type(o).__module__}.{type(o).__qualname__}" for o in objects)
    return collections.Counter(name for name in names if name.startswith(OURS))


async def test_lookups_submissions_and_reads_leave_no_cycles(api: Api, catalog: Catalog) -> None:
    alice = as_citizen(api, ALICE)
    lookup, application = _service(catalog, "LOOKUP"), _service(catalog, "APPLICATION")
    lookup_form = sample_form((await form_of(api, lookup))["form"]["fields"], ALICE)
    application_form = sample_form((await form_of(api, application))["form"]["fields"], ALICE)
    requests = [
        (alice, LOOKUP, {"c": lookup, "i": lookup_form}),
        (alice, SUBMIT, {"code": application, "form": application_form}),
        (alice, "{ myApplications(first: 5) { totalCount edges { node { id status } } } }", {}),
        (api, "query($c: ID!) { service(code: $c) { code form { fields { name } } } }",
         {"c": application}),
    ]  # fmt: skip
    for client, query, variables in requests:  # first use: caches, pools, lazy imports
        await client.data(query, variables)

    gc.collect()
    gc.disable()
    gc.set_debug(gc.DEBUG_SAVEALL)
    try:
        for _ in range(3):
            for client, query, variables in requests:
                await client.data(query, variables)
        gc.collect()
        left = _ours(gc.garbage)
    finally:
        gc.set_debug(0)
        gc.garbage.clear()
        gc.enable()
    assert not left, left.most_common(10)
