"""The development token issuer of the embedded default.

Signs RS256 JWTs (RFC 9068 shape) with a key kept under ``var/keys``. Only
ever trusted when ``KHAALGA_ENV=development``. We use joserfc, Authlib's
own JOSE library (``authlib.jose`` is deprecated in its favour).
"""

from __future__ import annotations

import os
import time
import uuid
from pathlib import Path

from joserfc import jwt
from joserfc.jwk import RSAKey

from auth.principal import Principal, PrincipalKind

DEV_ISSUER = "urn:khaalga:dev-issuer"
AUDIENCE = "khaalga"
LIFETIME = 12 * 3600

CITIZEN_SCOPES = ("applications:read", "applications:write", "catalog:read")
OFFICER_SCOPES = ("agency:applications", "catalog:read")


def load_or_create_key(directory: Path) -> RSAKey:
    path = directory / "dev-issuer.pem"
    if path.exists():
        return RSAKey.import_key(path.read_bytes(), {"kid": "dev-1"})
    directory.mkdir(parents=True, exist_ok=True)
    key = RSAKey.generate_key(2048, {"kid": "dev-1"})
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "wb") as handle:
        handle.write(key.as_pem(private=True))
    return key


def issue(key: RSAKey, principal: Principal, lifetime: int = LIFETIME) -> str:
    now = int(time.time())
    claims: dict[str, object] = {
        "iss": DEV_ISSUER,
        "aud": AUDIENCE,
        "sub": principal.subject,
        "iat": now,
        "nbf": now,
        "exp": now + lifetime,
        "jti": uuid.uuid4().hex,
        "client_id": "khaalga-dev",
        "khaalga_kind": principal.kind.value,
        "scope": " ".join(sorted(principal.scopes)),
    }
    if principal.agency:
        claims["agency"] = principal.agency
    return jwt.encode({"alg": "RS256", "typ": "at+jwt", "kid": "dev-1"}, claims, key)


def citizen(register_number: str) -> Principal:
    return Principal(PrincipalKind.CITIZEN, register_number, None, frozenset(CITIZEN_SCOPES))


def officer(agency: str, officer_id: str | None = None) -> Principal:
    subject = officer_id or f"officer-{agency.lower()}"
    return Principal(PrincipalKind.OFFICER, subject, agency, frozenset(OFFICER_SCOPES))
