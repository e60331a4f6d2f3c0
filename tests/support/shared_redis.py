"""The Redis on 127.0.0.1:6379 that tests share, as fixtures (registered in
tests/conftest.py): a prefix of their own per test, and every key under it
removed afterwards."""

from __future__ import annotations

import uuid
from collections.abc import Iterator

import pytest
import redis

from tests.conftest import unavailable

URL = "redis://127.0.0.1:6379/0"


@pytest.fixture
def redis_url() -> str:
    """The URL, after checking that Redis answers (fail under CI, skip otherwise)."""
    client = redis.Redis.from_url(URL, socket_connect_timeout=2)
    try:
        client.ping()
    except redis.RedisError as exc:
        unavailable("Redis on 127.0.0.1:6379", exc)
    finally:
        client.close()
    return URL


@pytest.fixture
def redis_prefix() -> Iterator[str]:
    """A key prefix no other test uses; its keys are deleted at the end."""
    prefix = f"khaalga-test-{uuid.uuid4().hex[:8]}"
    try:
        yield prefix
    finally:
        client = redis.Redis.from_url(URL)
        for key in client.scan_iter(f"{prefix}*"):
            client.delete(key)
        client.close()
