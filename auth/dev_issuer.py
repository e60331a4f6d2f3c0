"""The development token issuer of the embedded default.

Signs RS256 JWTs (RFC 9068 shape) with a key kept under ``var/keys``. Only
ever trusted when ``KHAALGA_ENV=development``. We use joserfc, Authlib's
own JOSE library (``authlib.jose`` is deprecated in its favour).
"""

from __future__ import annotations

import os
import tempfile
import time
import uuid
from pathlib import Path

from joserfc import jwt
from joserfc.jwk import RSAKey

from auth.principal import Principal, PrincipalKind

DEV_ISSUER = "urn:khaalga:dev-issuer"
AUDIENCE = "khaalga"
LIFETIME = 12 * 3600

# Which world an app's token is for: ``sandbox`` (made-up agencies only) or
# ``production``; absent means production.
ENV_CLAIM = "khaalga_env"
SANDBOX = "sandbox"
PRODUCTION = "production"

CITIZEN_SCOPES = ("applications:read", "applications:write", "catalog:read")
OFFICER_SCOPES = ("agency:applications", "catalog:read")


def load_or_create_key(directory: Path, name: str = "dev-issuer.pem", kid: str = "dev-1") -> RSAKey:
    """The RSA key in ``directory/name``, made on first use (the development
    issuer's, and in development the developer program's token signing key)."""
    path = directory / name
    if path.exists():
        return RSAKey.import_key(path.read_bytes(), {"kid": kid})
    directory.mkdir(parents=True, exist_ok=True)
    key = RSAKey.generate_key(2048, {"kid": kid})
    # Several processes may start on one fresh var/ at once: write the key in
    # full under a private name, then link it into place, which either
    # creates the file whole or finds another process's key already there.
    fd, temporary = tempfile.mkstemp(dir=directory, prefix=f".{path.stem}-")
    try:
        with os.fdopen(fd, "wb") as handle:
            handle.write(key.as_pem(private=True))
        os.link(temporary, path)
    except FileExistsError:
        return RSAKey.import_key(path.read_bytes(), {"kid": kid})
    finally:
        os.unlink(temporary)
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
    if principal.sandbox:
        claims[ENV_CLAIM] = SANDBOX
    return jwt.encode({"alg": "RS256", "typ": "at+jwt", "kid": "dev-1"}, claims, key)


def citizen(register_number: str) -> Principal:
    return Principal(PrincipalKind.CITIZEN, register_number, None, frozenset(CITIZEN_SCOPES))


def officer(agency: str, officer_id: str | None = None) -> Principal:
    subject = officer_id or f"officer-{agency.lower()}"
    return Principal(PrincipalKind.OFFICER, subject, agency, frozenset(OFFICER_SCOPES))
