"""Rate limits per principal: a request budget, counted by ASGI middleware
after authentication, and a cost budget, charged from inside GraphQL once the
operation's cost is known and before any resolver runs.

Budgets come from ``KHAALGA_RATE_LIMITS`` (requests) and
``KHAALGA_COST_LIMITS`` (query cost, schema/limits/cost.py), e.g.
``anonymous=60/minute,citizen=600/minute``. A registered app's own quota
(``Principal.quota``, set by the developer program) replaces the APP kind's
default for that app. Both budgets are counted by the ``limits`` library: in
memory on the embedded default, in Redis when ``KHAALGA_REDIS_URL`` is set so
that all gateway processes share them. Requests use a moving window (exact);
cost uses a sliding window counter, which keeps two counters per principal
whatever the cost, where a moving window would store one entry per cost unit.

Answers carry the IETF httpapi draft's ``RateLimit-Policy`` and ``RateLimit``
fields (draft-ietf-httpapi-ratelimit-headers-10), one list item per policy.
The draft lets a server leave out only a policy measured in the same unit as
one nearer exhaustion; requests and cost are different units, so both are
listed. A refusal is a 429 problem with ``Retry-After`` that names the policy.
Anonymous callers are counted per client address, everyone else per subject;
nothing personal is ever logged.
"""

from __future__ import annotations

import enum
import functools
import logging
import math
import time
from collections.abc import Mapping
from dataclasses import dataclass
from typing import cast

from limits import RateLimitItem, parse
from limits.aio.storage import Storage
from limits.aio.storage.base import SlidingWindowCounterSupport
from limits.aio.strategies import MovingWindowRateLimiter, SlidingWindowCounterRateLimiter
from limits.errors import StorageError
from limits.storage import storage_from_string
from starlette.responses import Response
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from auth.principal import ANONYMOUS, Principal, PrincipalKind
from gateway.http.problem import problem

log = logging.getLogger("khaalga.rate_limit")

DEFAULT_LIMITS = "anonymous=60/minute,citizen=600/minute,officer=6000/minute,app=6000/minute"
# Without KHAALGA_COST_LIMITS, a kind's cost budget is this many units per
# request of its request budget, over the same window (a page of ten services
# with their names costs ~50, a page of twenty forms ~1,400): with the default
# request budgets, anonymous=6000/minute ... app=600000/minute.
COST_PER_REQUEST = 100

# The draft's quota-unit registry has requests, content-bytes and
# concurrent-requests only; it asks service-specific values to carry a vendor
# prefix, and a client that does not know the unit can tell it is not requests.
COST_UNIT = "khaalga-cost"

# Where the middleware leaves the request's budget for the GraphQL view.
BUDGET = "khaalga.budget"


class RateLimitConfigError(ValueError):
    pass


def parse_limits(
    text: str, variable: str = "KHAALGA_RATE_LIMITS"
) -> dict[PrincipalKind, RateLimitItem]:
    """``kind=N/period,...``; a kind left out is not limited."""
    policies: dict[PrincipalKind, RateLimitItem] = {}
    for part in filter(None, (p.strip() for p in text.split(","))):
        kind, _, rate = part.partition("=")
        try:
            policies[PrincipalKind(kind.strip().upper())] = parse(rate.strip())
        except ValueError as exc:
            raise RateLimitConfigError(f"{variable}: bad entry {part!r}") from exc
    return policies


@functools.lru_cache(maxsize=1024)
def quota_item(text: str) -> RateLimitItem | None:
    """An app's quota, or None when it is malformed."""
    # Cached: a quota is read on every request of its app, and a malformed
    # one is logged once per process rather than once per request.
    try:
        return parse(text)
    except ValueError:
        log.warning("an app quota is not in the limits notation; the APP default applies")
        return None


class Unit(enum.Enum):
    REQUESTS = "requests"
    COST = "cost"


@dataclass(frozen=True, slots=True)
class Policy:
    name: str
    item: RateLimitItem
    unit: Unit
    who: str  # the quota partition: a client address or a subject

    @property
    def window(self) -> int:
        return int(self.item.get_expiry())

    def field(self) -> str:
        unit = f';qu="{COST_UNIT}"' if self.unit is Unit.COST else ""
        return f'"{self.name}";q={self.item.amount}{unit};w={self.window}'


@dataclass(frozen=True, slots=True)
class Verdict:
    policy: Policy
    allowed: bool
    remaining: int
    reset: int  # seconds until the window gives quota back: the draft's ``t``
    retry_after: int = 0  # seconds; set when refused
    cost: int = 1

    def field(self) -> str:
        return f'"{self.policy.name}";r={self.remaining};t={self.reset}'

    def detail(self) -> str:
        policy, quota, window = self.policy.name, self.policy.item.amount, self.policy.window
        if self.policy.unit is Unit.REQUESTS:
            return (
                f"the {policy} budget of {quota} requests per {window} s is used up; "
                f"retry in {self.retry_after} s"
            )
        if self.cost > quota:
            return (
                f"this operation costs {self.cost}, more than the whole {policy} budget of "
                f"{quota} per {window} s; ask for fewer items (first) or fewer fields"
            )
        return (
            f"the {policy} budget of {quota} cost units per {window} s has {self.remaining} "
            f"left and this operation costs {self.cost}; retry in {self.retry_after} s"
        )


def seconds_until_room(
    limit: int,
    expiry: float,
    cost: int,
    window: tuple[int, float, int, float],
) -> float:
    """When a sliding window counter will have room for ``cost``, from the
    ``limits`` storage's ``get_sliding_window`` (previous count, seconds the
    previous window still weighs, current count, seconds until the current
    window is over plus one window), for a ``cost`` within ``limit``. The
    previous count fades out linearly until the current window ends; then the
    current count fades the same way."""
    previous, previous_ttl, current, current_ttl = window
    room = limit - cost - current
    if room >= 0:
        return max(0.0, previous_ttl - room * expiry / previous) if previous else 0.0
    until_shift = max(0.0, current_ttl - expiry)
    return until_shift + max(0.0, expiry - (limit - cost) * expiry / current)


class RateLimiter:
    def __init__(
        self,
        policies: Mapping[PrincipalKind, RateLimitItem],
        storage: Storage,
        cost_policies: Mapping[PrincipalKind, RateLimitItem] | None = None,
    ) -> None:
        self.policies = policies
        self.cost_policies = cost_policies or {}
        self.storage = storage
        self.strategy = MovingWindowRateLimiter(storage)
        self.cost_strategy = SlidingWindowCounterRateLimiter(storage)

    @classmethod
    def build(
        cls,
        limits_text: str,
        redis_url: str | None,
        prefix: str,
        cost_text: str | None = None,
        min_cost: int = 0,
    ) -> RateLimiter:
        """``cost_text`` None: each kind with a request budget gets a cost
        budget in proportion (``COST_PER_REQUEST``), and at least ``min_cost``
        (KHAALGA_MAX_COST) so that any operation within the operation limits
        can run; a kind without a request budget gets none, so turning request
        limits off (``KHAALGA_RATE_LIMITS=""``) turns rate limiting off."""
        policies = parse_limits(limits_text)
        if cost_text is None:
            costs = {kind: _in_proportion(item, min_cost) for kind, item in policies.items()}
        else:
            costs = parse_limits(cost_text, "KHAALGA_COST_LIMITS")
        if redis_url:
            url = "async+" + redis_url if not redis_url.startswith("async+") else redis_url
            # Wrapped, so that a Redis failure is the StorageError that fails open.
            storage = storage_from_string(
                url, implementation="redispy", key_prefix=prefix, wrap_exceptions=True
            )
        else:
            storage = storage_from_string("async+memory://")
        assert isinstance(storage, Storage)
        return cls(policies, storage, costs)

    def applicable(self, principal: Principal, client: str) -> tuple[Policy | None, Policy | None]:
        """The request and cost policies that apply to ``principal``, if any."""
        kind = principal.kind
        # Only an app can bring its own quota; for anyone else with no policy
        # (limits off) there is nothing to build on each request.
        if kind is not PrincipalKind.APP and not (
            kind in self.policies or kind in self.cost_policies
        ):
            return None, None
        name = kind.value.lower()
        who = client if kind is PrincipalKind.ANONYMOUS else str(principal.subject)
        quota = principal.quota if kind is PrincipalKind.APP else None
        own_requests = quota_item(quota.requests) if quota and quota.requests else None
        own_cost = quota_item(quota.cost) if quota and quota.cost else None
        requests = (
            Policy(f"{name}-quota", own_requests, Unit.REQUESTS, who)
            if own_requests is not None
            else _policy(name, self.policies.get(kind), Unit.REQUESTS, who)
        )
        cost = (
            Policy(f"{name}-quota-cost", own_cost, Unit.COST, who)
            if own_cost is not None
            else _policy(f"{name}-cost", self.cost_policies.get(kind), Unit.COST, who)
        )
        return requests, cost

    async def count(self, policy: Policy) -> Verdict | None:
        """One more request; None when the storage cannot say (fail open)."""
        item = policy.item
        try:
            allowed = await self.strategy.hit(item, policy.name, policy.who)
            stats = await self.strategy.get_window_stats(item, policy.name, policy.who)
        except StorageError:
            # Fail open: a Redis outage must not take every agency's service down.
            log.warning("rate limit storage unavailable; request not counted")
            return None
        reset = max(0, math.ceil(stats.reset_time - time.time()))
        return Verdict(policy, allowed, stats.remaining, reset, max(1, reset))

    async def charge(self, policy: Policy, cost: int) -> Verdict | None:
        """Charge an operation's cost; None when the storage cannot say (fail open)."""
        item, strategy = policy.item, self.cost_strategy
        try:
            # A free operation (only __typename, say) is not a hit, but still
            # reports what is left.
            allowed = cost <= 0 or await strategy.hit(item, policy.name, policy.who, cost=cost)
            stats = await strategy.get_window_stats(item, policy.name, policy.who)
            wait = 0.0
            if cost > item.amount:
                wait = policy.window  # it never fits; at least do not invite a quick retry
            elif not allowed:
                storage = cast(SlidingWindowCounterSupport, strategy.storage)
                window = await storage.get_sliding_window(
                    item.key_for(policy.name, policy.who), item.get_expiry()
                )
                wait = seconds_until_room(item.amount, item.get_expiry(), cost, window)
        except StorageError:
            log.warning("rate limit storage unavailable; operation cost not charged")
            return None
        reset = max(0, math.ceil(stats.reset_time - time.time()))
        # The draft: Retry-After should not be earlier than the effective window's end.
        retry = max(1, reset, math.ceil(wait))
        return Verdict(policy, allowed, stats.remaining, reset, retry, cost)

    async def aclose(self) -> None:
        client = getattr(self.storage, "bridge", None)
        redis = getattr(client, "storage", None)
        if redis is not None:
            await redis.aclose()


def _in_proportion(requests: RateLimitItem, minimum: int) -> RateLimitItem:
    amount = max(requests.amount * COST_PER_REQUEST, minimum)
    return type(requests)(amount, requests.multiples, namespace=requests.namespace)


def _policy(name: str, item: RateLimitItem | None, unit: Unit, who: str) -> Policy | None:
    return Policy(name, item, unit, who) if item is not None else None


class RequestBudget:
    """One HTTP request's budgets. The middleware counts the request; the
    GraphQL cost extension charges the operation's cost through ``charge``
    (it is ``Context.budget``); the view answers a refused charge with
    ``too_many()``; and the middleware writes both policies' fields on
    whatever answer goes out."""

    def __init__(self, limiter: RateLimiter, principal: Principal, client: str) -> None:
        self.limiter = limiter
        self.requests, self.cost = limiter.applicable(principal, client)
        self.verdicts: list[Verdict] = []

    @property
    def limited(self) -> bool:
        return self.requests is not None or self.cost is not None

    @property
    def refused(self) -> Verdict | None:
        return next((v for v in self.verdicts if not v.allowed), None)

    async def count_request(self) -> bool:
        verdict = await self.limiter.count(self.requests) if self.requests else None
        if verdict is not None:
            self.verdicts.append(verdict)
        return verdict is None or verdict.allowed

    async def charge(self, cost: int) -> bool:
        verdict = await self.limiter.charge(self.cost, cost) if self.cost else None
        if verdict is not None:
            self.verdicts.append(verdict)
        return verdict is None or verdict.allowed

    def headers(self) -> list[tuple[bytes, bytes]]:
        policies = [p.field() for p in (self.requests, self.cost) if p is not None]
        headers = [(b"ratelimit-policy", ", ".join(policies).encode())] if policies else []
        if self.verdicts:
            headers.append((b"ratelimit", ", ".join(v.field() for v in self.verdicts).encode()))
        return headers

    def too_many(self) -> Response | None:
        verdict = self.refused
        if verdict is None:
            return None
        return problem(
            429,
            verdict.detail(),
            {"Retry-After": str(verdict.retry_after)},
            # The draft's quota-exceeded problem names the policies this way.
            {"violated-policies": [verdict.policy.name]},
        )


def too_many(scope: Scope) -> Response | None:
    """The 429 answer if the request's cost budget refused its operation."""
    budget = scope.get(BUDGET)
    return budget.too_many() if isinstance(budget, RequestBudget) else None


def request_budget(limiter: RateLimiter, scope: Scope) -> RequestBudget:
    """The budget of the request's principal, an anonymous one's by client
    address; the middleware's and the fast path's (gateway/http/public_answer.py)."""
    client = scope.get("client") or ("unknown", 0)
    return RequestBudget(limiter, scope.get("principal", ANONYMOUS), str(client[0]))


async def admit(budget: RequestBudget, scope: Scope) -> Response | None:
    """Count the request: the 429 when its budget is spent, else None. A
    limited budget is left in the scope for the view's cost charge."""
    if not budget.limited:
        return None
    scope[BUDGET] = budget
    return None if await budget.count_request() else budget.too_many()


class RateLimitMiddleware:
    def __init__(self, app: ASGIApp, limiter: RateLimiter, paths: tuple[str, ...]) -> None:
        self.app = app
        self.limiter = limiter
        self.paths = paths

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["path"] not in self.paths:
            await self.app(scope, receive, send)
            return
        budget = request_budget(self.limiter, scope)
        if not budget.limited:
            await self.app(scope, receive, send)
            return

        async def send_with_headers(message: Message) -> None:
            # Read at the start of the answer: the cost is charged during execution.
            if message["type"] == "http.response.start":
                message = {**message, "headers": [*message.get("headers", []), *budget.headers()]}
            await send(message)

        refusal = await admit(budget, scope)
        await (self.app if refusal is None else refusal)(scope, receive, send_with_headers)
