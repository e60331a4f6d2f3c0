"""Media types: parsing ``Content-Type`` and choosing the response type from
``Accept`` as the GraphQL-over-HTTP spec asks."""

from __future__ import annotations

import functools

GRAPHQL_RESPONSE = "application/graphql-response+json"
JSON = "application/json"
# Listed in the order that wins a tie: ``*/*`` and ``application/*`` get the
# legacy type (the spec's advice until its watershed), while a client naming
# both types at the same quality gets the new one (see _score).
_OFFERED = (JSON, GRAPHQL_RESPONSE)


def parse_media_type(value: str) -> tuple[str, dict[str, str]]:
    media, *rest = value.split(";")
    params = {}
    for param in rest:
        name, _, raw = param.partition("=")
        params[name.strip().lower()] = raw.strip().strip('"')
    return media.strip().lower(), params


def _quality(params: dict[str, str]) -> float:
    try:
        return max(0.0, min(1.0, float(params.get("q", "1"))))
    except ValueError:
        return 0.0


def _score(offered: str, ranges: list[tuple[str, float]]) -> tuple[float, int, bool]:
    """(quality, specificity, named): the most specific matching range decides."""
    best = (0.0, -1, False)
    for media, quality in ranges:
        if media == offered:
            specificity = 2
        elif media == offered.split("/")[0] + "/*":
            specificity = 1
        elif media == "*/*":
            specificity = 0
        else:
            continue
        if specificity > best[1]:
            best = (quality, specificity, specificity == 2 and offered == GRAPHQL_RESPONSE)
    return best


@functools.lru_cache(maxsize=256)
def negotiate(accept: str | None) -> str | None:
    """The response media type for an ``Accept`` header, or None (406).
    Clients send a handful of distinct headers, each again on every request."""
    if not accept or not accept.strip():
        return JSON
    ranges = []
    for item in accept.split(","):
        media, params = parse_media_type(item)
        if media:
            ranges.append((media, _quality(params)))
    scores = [(_score(offered, ranges), offered) for offered in _OFFERED]
    (quality, _, _), chosen = max(scores, key=lambda pair: pair[0])
    return chosen if quality > 0 else None
