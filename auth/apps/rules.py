"""What an app's registration, scopes, quota and secret rotation must satisfy.

Each check answers ``{field: Text}`` in Mongolian and English, naming the
field and the rule, for GraphQL's ``BAD_USER_INPUT`` and the CLI alike.
"""

from __future__ import annotations

import unicodedata
from collections.abc import Iterable

from limits import parse_many

from auth.principal import Quota
from gateway.catalog.loader import Catalog
from gateway.catalog.model import Text

FIXED_SCOPES = ("catalog:read", "applications:read", "applications:write")
SERVICE_SCOPE = "service:"
MAX_NAME = 100
MAX_TEXT = 2000
MAX_SCOPES = 200
MAX_GRACE = 30 * 24 * 3600  # a month: long enough to roll a secret out everywhere
MAX_QUOTA = 64


def supported_scopes(catalog: Catalog) -> list[str]:
    return [*FIXED_SCOPES, *(SERVICE_SCOPE + s.code for s in catalog.services())]


def registration_problems(
    catalog: Catalog, name: str, description: str, purpose: str | None, scopes: Iterable[str]
) -> dict[str, Text]:
    problems: dict[str, Text] = {}
    if not name.strip():
        problems["name"] = Text(mn="Нэр хоосон байж болохгүй", en="The name must not be empty")
    elif len(name) > MAX_NAME:
        problems["name"] = _too_long(MAX_NAME)
    elif _control(name, allowed=""):
        problems["name"] = _CONTROL
    for field, text in (("description", description), ("purpose", purpose or "")):
        if len(text) > MAX_TEXT:
            problems[field] = _too_long(MAX_TEXT)
        elif _control(text, allowed="\n\t"):
            problems[field] = _CONTROL
    scope_problem = _scopes_problem(catalog, list(scopes))
    if scope_problem is not None:
        problems["scopes"] = scope_problem
    return problems


def _scopes_problem(catalog: Catalog, scopes: list[str]) -> Text | None:
    if not scopes:
        return Text(mn="Ядаж нэг эрх (scope) сонгоно", en="Choose at least one scope")
    if len(scopes) > MAX_SCOPES:
        return Text(mn=f"{MAX_SCOPES}-аас ихгүй эрх", en=f"At most {MAX_SCOPES} scopes")
    for scope in scopes:
        shown = scope[:40]  # the caller's own input, cut short
        if scope.startswith(SERVICE_SCOPE):
            if catalog.service(scope.removeprefix(SERVICE_SCOPE)) is None:
                return Text(
                    mn=f"'{shown}': каталогид ийм кодтой үйлчилгээ алга",
                    en=f"'{shown}': no service in the catalog has this code",
                )
        elif scope not in FIXED_SCOPES:
            allowed = ", ".join(FIXED_SCOPES)
            return Text(
                mn=f"'{shown}': танигдаагүй эрх; {allowed} эсвэл service:<КОД>",
                en=f"'{shown}': unknown scope; use {allowed} or service:<CODE>",
            )
    return None


def quota_problems(quota: Quota) -> dict[str, Text]:
    problems: dict[str, Text] = {}
    for name, value in (("requests", quota.requests), ("cost", quota.cost)):
        if value is None:
            continue
        try:
            # One limit per budget: the rate limiter reads it with limits.parse,
            # which would silently drop a second one ("10/second;600/minute").
            items = parse_many(value) if len(value) <= MAX_QUOTA else []
        except ValueError:
            items = []
        valid = len(items) == 1 and items[0].amount > 0
        if not valid:
            problems[name] = Text(
                mn="Нэг хязгаарыг '1200/minute' хэлбэрээр бичнэ (second, minute, hour, day)",
                en="Write one limit such as '1200/minute' (second, minute, hour, day)",
            )
    return problems


def grace_problem(seconds: int) -> dict[str, Text]:
    if 0 <= seconds <= MAX_GRACE:
        return {}
    return {
        "graceSeconds": Text(
            mn=f"0-{MAX_GRACE} секундын хооронд", en=f"Between 0 and {MAX_GRACE} seconds"
        )
    }


_CONTROL = Text(mn="Хяналтын тэмдэгт агуулж болохгүй", en="Must not contain control characters")


def _control(text: str, allowed: str) -> bool:
    return any(unicodedata.category(c) == "Cc" and c not in allowed for c in text)


def _too_long(limit: int) -> Text:
    return Text(mn=f"{limit} тэмдэгтээс ихгүй", en=f"At most {limit} characters")
