"""Rate limits per principal, as plain ASGI middleware after authentication.

Budgets come from ``KHAALGA_RATE_LIMITS`` (e.g. ``anonymous=60/minute,
citizen=600/minute``) and are counted by the ``limits`` library: in memory on
the embedded default, in Redis when ``KHAALGA_REDIS_URL`` is set so that all
gateway processes share one budget. Answers carry the IETF httpapi draft's
``RateLimit-Policy`` and ``RateLimit`` fields; a refusal is a 429 problem
with ``Retry-After``. Anonymous callers are counted per client address,
everyone else per subject, never by anything personal in a log.
"""

from __future__ import annotations

import logging
import math
import time
from collections.abc import Mapping
from dataclasses import dataclass

from limits import RateLimitItem, parse
from limits.aio.storage import Storage
from limits.aio.strategies import MovingWindowRateLimiter
from limits.errors import StorageError
from limits.storage import storage_from_string
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from auth.principal import ANONYMOUS, Principal, PrincipalKind
from gateway.http.problem import problem

log = logging.getLogger("khaalga.rate_limit")

DEFAULT_LIMITS = "anonymous=60/minute,citizen=600/minute,officer=6000/minute,app=6000/minute"


class RateLimitConfigError(ValueError):
    pass


def parse_limits(text: str) -> dict[PrincipalKind, RateLimitItem]:
    """``kind=N/period,...``; a kind left out is not limited."""
    policies: dict[PrincipalKind, RateLimitItem] = {}
    for part in filter(None, (p.strip() for p in text.split(","))):
        kind, _, rate = part.partition("=")
        try:
            policies[PrincipalKind(kind.strip().upper())] = parse(rate.strip())
        except ValueError as exc:
            raise RateLimitConfigError(f"KHAALGA_RATE_LIMITS: bad entry {part!r}") from exc
    return policies


@dataclass(frozen=True, slots=True)
class Verdict:
    allowed: bool
    policy: str
    quota: int
    window: int
    remaining: int
    reset: int

    def headers(self) -> list[tuple[bytes, bytes]]:
        return [
            (b"ratelimit-policy", f'"{self.policy}";q={self.quota};w={self.window}'.encode()),
            (b"ratelimit", f'"{self.policy}";r={self.remaining};t={self.reset}'.encode()),
        ]


class RateLimiter:
    def __init__(
        self, policies: Mapping[PrincipalKind, RateLimitItem], storage: Storage
    ) -> None:
        self.policies = policies
        self.storage = storage
        self.strategy = MovingWindowRateLimiter(storage)

    @classmethod
    def build(cls, limits_text: str, redis_url: str | None, prefix: str) -> RateLimiter:
        if redis_url:
            url = "async+" + redis_url if not redis_url.startswith("async+") else redis_url
            storage = storage_from_string(url, implementation="redispy", key_prefix=prefix)
        else:
            storage = storage_from_string("async+memory://")
        assert isinstance(storage, Storage)
        return cls(parse_limits(limits_text), storage)

    async def check(self, principal: Principal, client: str) -> Verdict | None:
        item = self.policies.get(principal.kind)
        if item is None:
            return None
        name = principal.kind.value.lower()
        who = client if principal.kind is PrincipalKind.ANONYMOUS else str(principal.subject)
        try:
            allowed = await self.strategy.hit(item, name, who)
            stats = await self.strategy.get_window_stats(item, name, who)
        except StorageError:
            # Fail open: a Redis outage must not take every agency's service down.
            log.warning("rate limit storage unavailable; request not counted")
            return None
        reset = max(0, math.ceil(stats.reset_time - time.time()))
        return Verdict(
            allowed, name, item.amount, int(item.get_expiry()), stats.remaining, reset
        )

    async def aclose(self) -> None:
        client = getattr(self.storage, "bridge", None)
        redis = getattr(client, "storage", None)
        if redis is not None:
            await redis.aclose()


class RateLimitMiddleware:
    def __init__(self, app: ASGIApp, limiter: RateLimiter, paths: tuple[str, ...]) -> None:
        self.app = app
        self.limiter = limiter
        self.paths = paths

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["path"] not in self.paths:
            await self.app(scope, receive, send)
            return
        client = scope.get("client") or ("unknown", 0)
        verdict = await self.limiter.check(scope.get("principal", ANONYMOUS), str(client[0]))
        if verdict is None:
            await self.app(scope, receive, send)
            return
        if not verdict.allowed:
            await _too_many(scope, receive, send, verdict)
            return

        async def send_with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                message = {**message, "headers": [*message.get("headers", []), *verdict.headers()]}
            await send(message)

        await self.app(scope, receive, send_with_headers)


async def _too_many(scope: Scope, receive: Receive, send: Send, verdict: Verdict) -> None:
    detail = (
        f"the {verdict.policy} budget of {verdict.quota} requests per {verdict.window} s "
        f"is used up; retry in {verdict.reset} s"
    )
    headers = {"Retry-After": str(max(1, verdict.reset))}
    headers.update((k.decode(), v.decode()) for k, v in verdict.headers())
    await problem(429, detail, headers)(scope, receive, send)
