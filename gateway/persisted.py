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
  recently used dropped): a restart or another replica asks clients again.
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
from collections import OrderedDict
from collections.abc import Callable, Iterator, Mapping
from pathlib import Path
from typing import Any

from graphql import GraphQLError
from strawberry.extensions import SchemaExtension

from gateway.settings import SettingsError


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


class DocumentStore:
    def __init__(self, allowlist: Mapping[str, str] | None = None, capacity: int = 10_000):
        self.allowlist = dict(allowlist or {})
        self.capacity = capacity
        self._registered: OrderedDict[str, str] = OrderedDict()

    def get(self, sha256: str, *, registered: bool) -> str | None:
        if sha256 in self.allowlist:
            return self.allowlist[sha256]
        if registered and sha256 in self._registered:
            self._registered.move_to_end(sha256)
            return self._registered[sha256]
        return None

    def register(self, sha256: str, document: str) -> None:
        self._registered[sha256] = document
        self._registered.move_to_end(sha256)
        while len(self._registered) > self.capacity:
            self._registered.popitem(last=False)


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

    def on_operation(self) -> Iterator[None]:
        self._resolve()  # raises a request error: strawberry answers it, nothing runs
        yield

    def on_validate(self) -> Iterator[None]:
        yield
        # Registered only once valid, so junk cannot fill the store.
        if self.to_register and not self.execution_context.pre_execution_errors:
            self.store.register(*self.to_register)

    def _resolve(self) -> None:
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
            found = self.store.get(sha256, registered=self.mode is TrustMode.APQ)
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


def trusted_documents(mode: str, path: Path | None) -> Callable[[], SchemaExtension]:
    """The extension factory for the settings; SettingsError if they don't fit."""

    trust = TrustMode(mode)
    if trust is TrustMode.ALLOWLIST and path is None:
        raise SettingsError("KHAALGA_TRUSTED_DOCUMENTS=allowlist needs the documents' file")
    try:
        store = DocumentStore(load_allowlist(path) if path else {})
    except (OSError, ValueError) as exc:
        raise SettingsError(f"KHAALGA_TRUSTED_DOCUMENTS_FILE: {exc}") from exc
    return lambda: TrustedDocuments(trust, store)
