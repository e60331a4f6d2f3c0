"""Where an issuer's verification keys come from."""

from __future__ import annotations

from typing import Protocol

from joserfc.jwk import KeySet, RSAKey


class KeyUnavailable(Exception):
    """The issuer's keys could not be fetched; the message is safe to show.
    ``retry_after``: seconds until the keys will be asked for again."""

    def __init__(self, message: str, retry_after: float = 5.0) -> None:
        super().__init__(message)
        self.retry_after = retry_after


class KeySource(Protocol):
    async def key_set(self, kid: str | None) -> KeySet:
        """The keys to verify a token whose header names ``kid``."""
        ...


class StaticKeys:
    """Keys known at start-up (the development issuer)."""

    def __init__(self, keys: KeySet | RSAKey) -> None:
        self.keys = keys if isinstance(keys, KeySet) else KeySet([keys])

    async def key_set(self, kid: str | None) -> KeySet:
        return self.keys
