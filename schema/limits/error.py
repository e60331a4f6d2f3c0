"""The one error every limit reports: ``OPERATION_LIMIT`` with which limit
and its maximum, so a client (or its developer) knows what to change."""

from __future__ import annotations

from collections.abc import Collection

from graphql import GraphQLError, Node

CODE = "OPERATION_LIMIT"

_NAMES = {
    "depth": ("depth", "гүн"),
    "aliases": ("aliases", "alias-ын тоо"),
    "rootFields": ("root fields", "үндсэн талбарын тоо"),
    "tokens": ("tokens", "токены тоо"),
    "directives": ("directives", "directive-ийн тоо"),
    "directiveRepeats": ("repeats of one directive", "нэг directive-ийн давталт"),
    "fieldRepeats": (
        "repeats of one field in a selection set",
        "нэг сонголт доторх нэг талбарын давталт",
    ),
    "documentBytes": ("document size in bytes", "баримтын хэмжээ (байт)"),
    "cost": ("cost", "өртөг"),
    "time": ("seconds of execution", "гүйцэтгэх хугацаа (секунд)"),
}


def limit_error(limit: str, maximum: int, nodes: Collection[Node] | None = None) -> GraphQLError:
    en, mn = _NAMES[limit]
    return GraphQLError(
        f"The operation exceeds the limit on {en} ({maximum}) / "
        f"Хүсэлтийн {mn} хязгаараас ({maximum}) хэтэрсэн",
        nodes=list(nodes) if nodes else None,
        extensions={"code": CODE, "limit": limit, "max": maximum},
    )


def is_limit_error(error: GraphQLError) -> bool:
    return (error.extensions or {}).get("code") == CODE


def budget_used_up() -> GraphQLError:
    """The principal's cost budget cannot pay for this operation. Over HTTP
    the view answers a 429 problem instead (gateway/rate_limit.py); this is
    what any other caller of the schema sees."""
    return GraphQLError(
        "The cost budget is used up; retry later / "
        "Хүсэлтийн өртгийн хязгаар дууссан; дараа дахин оролдоно уу",
        extensions={"code": "RATE_LIMITED"},
    )
