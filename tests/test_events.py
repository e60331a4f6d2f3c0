"""Status-change wake-ups, in memory and across processes through Redis."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator

import pytest

from gateway.events import ApplicationEvents, MemoryEvents, RedisEvents


@pytest.fixture(params=["memory", "redis"])
async def events(
    request: pytest.FixtureRequest,
) -> AsyncIterator[tuple[ApplicationEvents, ApplicationEvents]]:
    """A publisher and a listener side; for Redis two separate clients, as two processes have."""
    if request.param == "memory":
        shared = MemoryEvents()
        yield shared, shared
        return
    # Only the Redis case needs the server (tests/support/shared_redis.py).
    url, prefix = request.getfixturevalue("redis_url"), request.getfixturevalue("redis_prefix")
    publisher, listener = RedisEvents(url, prefix), RedisEvents(url, prefix)
    yield publisher, listener
    await publisher.aclose()
    await listener.aclose()


async def test_a_publish_wakes_the_listener_long_before_the_recheck(
    events: tuple[ApplicationEvents, ApplicationEvents],
) -> None:
    publisher, listener = events
    stream = listener.listen("app-1", recheck=30)
    waiting = asyncio.ensure_future(anext(stream))
    await asyncio.sleep(0.2)  # subscribed
    await publisher.publish("app-2")
    await asyncio.sleep(0.3)
    assert not waiting.done()  # another application's change wakes nobody here
    started = time.monotonic()
    await publisher.publish("app-1")
    await asyncio.wait_for(waiting, 5)
    assert time.monotonic() - started < 5
    await stream.aclose()  # type: ignore[attr-defined]


async def test_listeners_recheck_on_a_timer_without_messages(
    events: tuple[ApplicationEvents, ApplicationEvents],
) -> None:
    _, listener = events
    stream = listener.listen("app-3", recheck=0.1)
    started = time.monotonic()
    await anext(stream)
    await anext(stream)
    assert time.monotonic() - started < 2
    await stream.aclose()  # type: ignore[attr-defined]
