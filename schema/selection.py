"""Whether an operation asks for a field, so a resolver can leave out the
work of fetching what nobody will read (an application's history, for a
listing that shows none)."""

from __future__ import annotations

from collections.abc import Sequence

import strawberry
from strawberry.types.nodes import FragmentSpread, InlineFragment, Selection


def selects(info: strawberry.Info, *path: str) -> bool:
    """True when the field being resolved selects ``path`` below it (field
    names, not aliases; fragments are looked through)."""
    # selected_fields holds the field being resolved itself; look below it.
    return any(_reaches(field.selections, path) for field in info.selected_fields)


def _reaches(selections: Sequence[Selection], path: Sequence[str]) -> bool:
    if not path:
        return True
    for selection in selections:
        if isinstance(selection, FragmentSpread | InlineFragment):
            if _reaches(selection.selections, path):
                return True
        elif selection.name == path[0] and _reaches(selection.selections, path[1:]):
            return True
    return False
