"""Which operations read only the public catalog, so that their answer is the
same for every caller and may be cached and shared (gateway/http/response_cache.py).

Decided on the parsed document against an allow-list of root fields, never
on what a response happens to contain. The allow-list is the catalog's root
fields: they are ``Public`` and read nothing but the immutable catalog view,
and everything below them (``Agency``, ``Service``, forms, pages) is catalog
data too; ``tests/http/test_response_cache.py`` checks both against the
schema, so a personal field added under a catalog type fails a test rather
than leaking through the cache. ``me`` is Public as well, but it is about the
caller, so it is not here.
"""

from __future__ import annotations

from collections.abc import Iterable
from functools import lru_cache

from graphql import (
    DocumentNode,
    FieldNode,
    FragmentDefinitionNode,
    FragmentSpreadNode,
    GraphQLError,
    InlineFragmentNode,
    OperationDefinitionNode,
    OperationType,
    SelectionNode,
    parse,
)

CATALOG_ROOT_FIELDS = frozenset({"agencies", "agency", "services", "service", "__typename"})
MAXSIZE = 256


def catalog_only(document: DocumentNode, operation_name: str | None) -> bool:
    """True when the operation that would run is a query whose root fields are
    all catalog fields (through any fragments). Anything unclear is False."""
    operations = [d for d in document.definitions if isinstance(d, OperationDefinitionNode)]
    if operation_name is None:
        if len(operations) != 1:
            return False
        operation = operations[0]
    else:
        named = [o for o in operations if o.name is not None and o.name.value == operation_name]
        if len(named) != 1:
            return False
        operation = named[0]
    if operation.operation is not OperationType.QUERY:
        return False
    fragments = {
        d.name.value: d for d in document.definitions if isinstance(d, FragmentDefinitionNode)
    }
    return _root_fields_allowed(operation.selection_set.selections, fragments, set())


def _root_fields_allowed(
    selections: Iterable[SelectionNode],
    fragments: dict[str, FragmentDefinitionNode],
    seen: set[str],
) -> bool:
    for selection in selections:
        if isinstance(selection, FieldNode):
            if selection.name.value not in CATALOG_ROOT_FIELDS:
                return False
        elif isinstance(selection, InlineFragmentNode):
            condition = selection.type_condition
            if condition is not None and condition.name.value != "Query":
                return False
            if not _root_fields_allowed(selection.selection_set.selections, fragments, seen):
                return False
        elif isinstance(selection, FragmentSpreadNode):
            name = selection.name.value
            fragment = fragments.get(name)
            # A missing or cyclic fragment is invalid: validation will say so.
            if fragment is None or name in seen or fragment.type_condition.name.value != "Query":
                return False
            if not _root_fields_allowed(
                fragment.selection_set.selections, fragments, seen | {name}
            ):
                return False
        else:
            return False
    return True


@lru_cache(maxsize=MAXSIZE)
def catalog_only_query(query: str, operation_name: str | None) -> bool:
    """``catalog_only`` on a document's text, remembered per text: the same few
    catalog documents arrive again and again."""
    try:
        document = parse(query)
    except GraphQLError:
        return False
    return catalog_only(document, operation_name)
