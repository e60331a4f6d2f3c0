"""The limits' values (``KHAALGA_MAX_*``); defaults follow GraphQL Armor."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class OperationLimits:
    depth: int = 10
    aliases: int = 15
    root_fields: int = 10
    tokens: int = 1000
    directives: int = 50
    document_bytes: int = 16_384
    cost: int = 5000
    # A list field without ``first`` is assumed to return this many items.
    default_list_size: int = 10
