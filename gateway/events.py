"""Wake-ups for subscribers when an application's history grows.

A notification carries only the application id: subscribers re-read the
application through the store, scoped to their principal, so nothing
personal travels through the broker and a missed message costs only
latency (subscribers also re-check on a timer). In memory for one process;
Redis pub/sub when ``KHAALGA_REDIS_URL`` is set, so a status change written
by a worker in another process reaches every gateway process.
"""

from __future__ import annotations

import abc
import asyncio
import contextlib
from collections import defaultdict
from collections.abc import AsyncIterator

import redis.asyncio as aioredis


class ApplicationEvents(abc.ABC):
    @abc.abstractmethod
    async def publish(self, application_id: str) -> None:
        """Say that the application's history changed (after the commit)."""

    @abc.abstractmethod
    def listen(self, application_id: str, recheck: float) -> AsyncIterator[None]:
        """Yield on each change, and at least every ``recheck`` seconds."""

    async def aclose(self) -> None:  # noqa: B027 - nothing to release in memory
        """Release connections."""


class MemoryEvents(ApplicationEvents):
    def __init__(self) -> None:
        self._waiters: dict[str, set[asyncio.Event]] = defaultdict(set)

    async def publish(self, application_id: str) -> None:
        for event in self._waiters.get(application_id, ()):
            event.set()

    async def listen(self, application_id: str, recheck: float) -> AsyncIterator[None]:
        event = asyncio.Event()
        self._waiters[application_id].add(event)
        try:
            while True:
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(event.wait(), recheck)
                event.clear()
                yield
        finally:
            self._waiters[application_id].discard(event)
            if not self._waiters[application_id]:
                del self._waiters[application_id]


class RedisEvents(ApplicationEvents):
    def __init__(self, url: str, prefix: str) -> None:
        self._redis = aioredis.Redis.from_url(url)
        self._prefix = prefix

    def _channel(self, application_id: str) -> str:
        return f"{self._prefix}:application:{application_id}"

    async def publish(self, application_id: str) -> None:
        await self._redis.publish(self._channel(application_id), b"1")

    async def listen(self, application_id: str, recheck: float) -> AsyncIterator[None]:
        pubsub = self._redis.pubsub(ignore_subscribe_messages=True)
        await pubsub.subscribe(self._channel(application_id))
        try:
            loop = asyncio.get_running_loop()
            while True:
                # get_message also returns None at once for the swallowed
                # subscribe confirmation, so wait out the deadline explicitly.
                deadline = loop.time() + recheck
                while (left := deadline - loop.time()) > 0:
                    if await pubsub.get_message(timeout=left) is not None:
                        break
                yield
        finally:
            await pubsub.unsubscribe()
            await pubsub.aclose()  # type: ignore[no-untyped-call]  # redis-py lacks a hint

    async def aclose(self) -> None:
        await self._redis.aclose()


def application_events(redis_url: str | None, prefix: str) -> ApplicationEvents:
    return RedisEvents(redis_url, prefix) if redis_url else MemoryEvents()
