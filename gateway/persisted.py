"""Trusted documents: automatic persisted queries and the operator's allow-list.

``KHAALGA_TRUSTED_DOCUMENTS``:
- ``off``: documents are sent in full; a persisted-query hash is refused with
  ``PERSISTED_QUERY_NOT_SUPPORTED``, so Apollo-style clients fall back.
- ``apq``: Apollo's automatic persisted queries. A client sends
  ``extensions.persistedQuery = {version: 1, sha256Hash}`` alone; an unknown
  hash is ``PERSISTED_QUERY_NOT_FOUND``; the client then sends the query with
  the hash, which is checked and registered once the document validates, and
  from then on the hash alone is enough, over POST or GET. Full documents
  still run. Registrations are kept in this process's memory (bounded, least
  recently used dropped) and, when ``KHAALGA_REDIS_URL`` is set, in Redis too,
  so that every gateway process serves what one of them registered: each
  document at most ``KHAALGA_MAX_DOCUMENT_BYTES``, kept ``KHAALGA_APQ_TTL``
  seconds, and at most 10,000 of them (oldest dropped), so that no client can
  fill Redis. Without Redis a restart or another replica asks clients again.
- ``allowlist``: only the documents in ``KHAALGA_TRUSTED_DOCUMENTS_FILE``
  run, sent by hash or in full; nothing can be registered over the API.

The file is the ``{"<sha256>": "<document>", ...}`` map that GraphQL Codegen
writes (persisted-documents.json), or Apollo's persisted query manifest; every
hash is checked against its document when the gateway starts.
"""

from __future__ import annotations

import enum
import hashlib
import json
import logging
import time
from collections import OrderedDict
from collections.abc import AsyncIterator, Callable, Mapping
from pathlib import Path
from typing import Any, cast

import redis.asyncio as aioredis
from graphql import GraphQLError
from redis.exceptions import RedisError
from strawberry.extensions import SchemaExtension

from gateway.settings import Settings, SettingsError

log = logging.getLogger("khaalga.persisted")

CAPACITY = 10_000  # registered documents kept, in memory and in Redis alike


class TrustMode(enum.StrEnum):
    OFF = "off"
    APQ = "apq"
    ALLOWLIST = "allowlist"


def document_hash(document: str) -> str:
    return hashlib.sha256(document.encode()).hexdigest()


def load_allowlist(path: Path) -> dict[str, str]:
    """Read and check the operator's documents; ValueError names the problem."""
    raw: Any = json.loads(path.read_text(encoding="utf-8"))
    if isinstance(raw, dict) and raw.get("format") == "apollo-persisted-query-manifest":
        pairs = [(op.get("id"), op.get("body")) for op in raw.get("operations", [])]
    elif isinstance(raw, dict):
        pairs = list(raw.items())
    else:
        raise ValueError(f"{path}: expected a JSON object of sha256 hash -> document")
    documents = {}
    for key, body in pairs:
        if not isinstance(key, str) or not isinstance(body, str):
            raise ValueError(f"{path}: every entry needs a hash and a document string")
        if document_hash(body) != key.lower():
            raise ValueError(f"{path}: {key} is not the sha256 of its document")
        documents[key.lower()] = body
    return documents


class SharedDocuments:
    """APQ registrations in Redis, for every gateway process: the document
    under ``<prefix>:apq:<sha256>`` with a TTL, and a sorted set of
    registration times that bounds their number, oldest dropped first. A
    Redis failure is a miss (the client sends the query again), never an error."""

    def __init__(self, url: str, prefix: str, ttl: int, capacity: int = CAPACITY) -> None:
        self.redis = aioredis.Redis.from_url(url, socket_connect_timeout=2, socket_timeout=2)
        self.index = f"{prefix}:apq:index"
        self.prefix = f"{prefix}:apq:"
        self.ttl = ttl
        self.capacity = capacity

    async def get(self, sha256: str) -> str | None:
        try:
            value = await self.redis.get(self.prefix + sha256)
        except (RedisError, OSError):
            log.warning("persisted query storage unavailable; the client is asked for the query")
            return None
        return value.decode() if isinstance(value, bytes) else None

    async def put(self, sha256: str, document: str) -> None:
        now = time.time()
        try:
            async with self.redis.pipeline(transaction=True) as pipe:
                pipe.set(self.prefix + sha256, document.encode(), ex=self.ttl)
                pipe.zadd(self.index, {sha256: now})
                pipe.zremrangebyscore(self.index, "-inf", now - self.ttl)
                pipe.expire(self.index, self.ttl)
                pipe.zcard(self.index)
                *_, size = await pipe.execute()
            if size > self.capacity:
                popped = await self.redis.zpopmin(self.index, size - self.capacity)
                oldest = cast("list[tuple[bytes, float]]", popped)  # (member, score) pairs
                if oldest:
                    await self.redis.delete(*(self.prefix + m.decode() for m, _ in oldest))
        except (RedisError, OSError):
            log.warning("persisted query storage unavailable; registration kept in memory only")

    async def aclose(self) -> None:
        await self.redis.aclose()


class DocumentStore:
    """The allow-list, and APQ registrations: in this process's memory (a
    bounded LRU), and behind it in ``shared`` Redis when there is one. A hash
    names its document, so a copy kept in memory is never stale."""

    def __init__(
        self,
        allowlist: Mapping[str, str] | None = None,
        capacity: int = CAPACITY,
        *,
        shared: SharedDocuments | None = None,
        max_bytes: int | None = None,
    ) -> None:
        self.allowlist = dict(allowlist or {})
        self.capacity = capacity
        self.shared = shared
        self.max_bytes = max_bytes
        self._registered: OrderedDict[str, str] = OrderedDict()

    async def get(self, sha256: str, *, registered: bool) -> str | None:
        if sha256 in self.allowlist:
            return self.allowlist[sha256]
        if not registered:
            return None
        if sha256 in self._registered:
            self._registered.move_to_end(sha256)
            return self._registered[sha256]
        # Only a real hash is worth a round trip: the client chose this string.
        real = len(sha256) == 64 and all(c in "0123456789abcdef" for c in sha256)
        found = await self.shared.get(sha256) if self.shared and real else None
        if found is not None and document_hash(found) == sha256:
            self._remember(sha256, found)
            return found
        return None

    async def register(self, sha256: str, document: str) -> None:
        # The size limit already refused larger documents before parsing;
        # checked again here because this is what bounds Redis.
        if self.max_bytes is not None and len(document.encode()) > self.max_bytes:
            return
        self._remember(sha256, document)
        if self.shared:
            await self.shared.put(sha256, document)

    def _remember(self, sha256: str, document: str) -> None:
        self._registered[sha256] = document
        self._registered.move_to_end(sha256)
        while len(self._registered) > self.capacity:
            self._registered.popitem(last=False)

    async def aclose(self) -> None:
        if self.shared:
            await self.shared.aclose()


def _error(code: str, message: str) -> GraphQLError:
    return GraphQLError(message, extensions={"code": code})


# Apollo clients look for these exact messages (older ones) or codes (newer).
NOT_FOUND = ("PERSISTED_QUERY_NOT_FOUND", "PersistedQueryNotFound")
NOT_SUPPORTED = ("PERSISTED_QUERY_NOT_SUPPORTED", "PersistedQueryNotSupported")
MISMATCH = (
    "PERSISTED_QUERY_HASH_MISMATCH",
    "The sha256Hash is not the hash of the query / sha256Hash нь хүсэлтийн хэштэй таарахгүй",
)
UNTRUSTED = (
    "UNTRUSTED_DOCUMENT",
    "Only the operator's registered documents run here / Зөвхөн бүртгэгдсэн хүсэлтийг гүйцэтгэнэ",
)


class TrustedDocuments(SchemaExtension):
    """Resolves ``extensions.persistedQuery`` to a document before parsing."""

    def __init__(self, mode: TrustMode, store: DocumentStore) -> None:
        self.mode = mode
        self.store = store
        self.to_register: tuple[str, str] | None = None

    async def on_operation(self) -> AsyncIterator[None]:
        await self._resolve()  # raises a request error: strawberry answers it, nothing runs
        yield

    async def on_validate(self) -> AsyncIterator[None]:
        yield
        # Registered only once valid, so junk cannot fill the store.
        if self.to_register and not self.execution_context.pre_execution_errors:
            await self.store.register(*self.to_register)

    async def _resolve(self) -> None:
        context = self.execution_context
        persisted = (context.operation_extensions or {}).get("persistedQuery")
        if persisted is None:
            untrusted = self.mode is TrustMode.ALLOWLIST and context.query is not None
            if untrusted and document_hash(context.query or "") not in self.store.allowlist:
                raise _error(*UNTRUSTED)
            return
        if self.mode is TrustMode.OFF or not isinstance(persisted, dict):
            raise _error(*NOT_SUPPORTED)
        sha256 = persisted.get("sha256Hash")
        if persisted.get("version") != 1 or not isinstance(sha256, str):
            raise _error(*NOT_SUPPORTED)
        sha256 = sha256.lower()
        if context.query is None:
            found = await self.store.get(sha256, registered=self.mode is TrustMode.APQ)
            if found is None:
                raise _error(*NOT_FOUND)
            context.query = found
        elif document_hash(context.query) != sha256:
            raise _error(*MISMATCH)
        elif self.mode is TrustMode.ALLOWLIST:
            if sha256 not in self.store.allowlist:
                raise _error(*UNTRUSTED)
        else:
            self.to_register = (sha256, context.query)


def document_store(settings: Settings) -> DocumentStore:
    """The store for the settings; SettingsError if they don't fit."""
    trust = TrustMode(settings.trusted_documents)
    path = settings.trusted_documents_file
    if trust is TrustMode.ALLOWLIST and path is None:
        raise SettingsError("KHAALGA_TRUSTED_DOCUMENTS=allowlist needs the documents' file")
    try:
        allowlist = load_allowlist(path) if path else {}
    except (OSError, ValueError) as exc:
        raise SettingsError(f"KHAALGA_TRUSTED_DOCUMENTS_FILE: {exc}") from exc
    shared = None
    if trust is TrustMode.APQ and settings.redis_url:
        shared = SharedDocuments(settings.redis_url, settings.redis_prefix, settings.apq_ttl)
    return DocumentStore(allowlist, shared=shared, max_bytes=settings.limits.document_bytes)


def trusted_documents(mode: str, store: DocumentStore) -> Callable[[], SchemaExtension]:
    """The extension factory for the mode and its store."""
    trust = TrustMode(mode)
    return lambda: TrustedDocuments(trust, store)
