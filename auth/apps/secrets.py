"""Client secrets: made from 256 random bits, stored as SHA-256 only.

Why a plain SHA-256 and not bcrypt/scrypt/Argon2: a slow password hash
makes each *guess* expensive, which matters when the secret is a human
password an attacker can enumerate from a dictionary. These secrets are 256
bits from the operating system's CSPRNG; with a stolen hash there is no
dictionary to try, and 2**256 SHA-256 evaluations are out of reach at any
speed, so the slow hash would add nothing but CPU work on every token
request (a lever for anyone flooding the token endpoint). Each secret is
unique, so no salt is needed either: equal hashes cannot reveal reuse.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import hmac
import secrets
import uuid

from auth.apps.model import AppSecret, Credentials, IssuedSecret

MARK = "khs_"  # lets secret scanners and people recognise a leaked Khaalga secret
PREFIX_LENGTH = len(MARK) + 4  # 24 of the 256 random bits are shown; 232 stay secret


def digest(secret: str) -> str:
    return hashlib.sha256(secret.encode("utf-8", "surrogateescape")).hexdigest()


def new_secret() -> tuple[IssuedSecret, str, str]:
    """A fresh secret, its SHA-256 and its display prefix."""
    value = MARK + secrets.token_urlsafe(32)
    return IssuedSecret(uuid.uuid4().hex, value), digest(value), value[:PREFIX_LENGTH]


def verify(credentials: Credentials, presented: str, now: dt.datetime) -> AppSecret | None:
    """The usable secret of the app that ``presented`` is, if any."""
    candidate = digest(presented)
    matched = None
    for secret in credentials.app.secrets:
        stored = credentials.hashes.get(secret.id)
        # compare_digest: no timing difference tells how much of a hash matched.
        if stored is not None and hmac.compare_digest(candidate, stored) and secret.usable(now):
            matched = secret
    return matched
