"""RFC 9457 problem details for transport errors (the request never reached
GraphQL). ``title`` is bilingual like every message the gateway writes."""

from __future__ import annotations

from collections.abc import Mapping

import orjson
from starlette.responses import Response

TITLES = {
    400: "Bad Request / Буруу хүсэлт",
    401: "Unauthorized / Нэвтрэх эрхгүй",
    404: "Not Found / Олдсонгүй",
    405: "Method Not Allowed / Энэ аргаар хандах боломжгүй",
    406: "Not Acceptable / Хариуны төрлийг дэмжихгүй",
    413: "Content Too Large / Хүсэлт хэт том",
    415: "Unsupported Media Type / Хүсэлтийн төрлийг дэмжихгүй",
    429: "Too Many Requests / Хэт олон хүсэлт",
    503: "Service Unavailable / Үйлчилгээ түр ажиллахгүй байна",
}


def problem(
    status: int,
    detail: str,
    headers: Mapping[str, str] | None = None,
    members: Mapping[str, object] | None = None,
) -> Response:
    """``members``: RFC 9457 extension members, e.g. a 429's ``violated-policies``."""
    body = {
        **(members or {}),
        "type": "about:blank",
        "title": TITLES.get(status, str(status)),
        "status": status,
        "detail": detail,
    }
    return Response(
        orjson.dumps(body),
        status_code=status,
        headers=dict(headers or {}),
        media_type="application/problem+json",
    )
