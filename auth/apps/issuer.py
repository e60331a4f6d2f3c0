"""The gateway as an OAuth 2.0 issuer for its developer program: its URL,
audience, signing key and token lifetime, and how the gateway trusts itself.

Tokens are RFC 9068 JWTs signed RS256. Besides the standard claims they
carry the app's environment (``khaalga_env``, the same claim every issuer
uses for it) and the id of the client secret they were obtained with, so
revoking that secret (or its grace running out) ends its tokens too.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from joserfc.errors import JoseError
from joserfc.jwk import KeySet, RSAKey

from auth.dev_issuer import ENV_CLAIM, load_or_create_key
from auth.keys import StaticKeys
from auth.principal import Principal
from auth.tokens import Issuer

__all__ = ["ENV_CLAIM", "SECRET_CLAIM", "GatewayIssuer", "IssuerKeyError", "read_signing_key"]

SECRET_CLAIM = "khaalga_secret_id"
DEV_KEY_FILE = "gateway-issuer.pem"
TOKEN_PATH = "/oauth/token"
JWKS_PATH = "/oauth/jwks"
METADATA_PATH = "/.well-known/oauth-authorization-server"
LOOPBACK = frozenset({"127.0.0.1", "localhost", "::1"})


class IssuerKeyError(Exception):
    """The configured signing key cannot be used; the message names no secret."""


def check_issuer_url(url: str) -> str | None:
    """Why ``url`` cannot be the issuer, or ``None``. Client secrets are sent
    to its token endpoint, so plain HTTP is for loopback development only."""
    parts = urlsplit(url)
    if parts.query or parts.fragment or not parts.hostname:
        return "must be an absolute URL without query or fragment"
    if parts.scheme == "https" or (parts.scheme == "http" and parts.hostname in LOOPBACK):
        return None
    return "must use https (plain http only on loopback)"


def read_signing_key(path: Path) -> RSAKey:
    try:
        key = RSAKey.import_key(path.read_bytes())
    except OSError as exc:
        raise IssuerKeyError(f"cannot read {path}: {exc.strerror}") from exc
    except (JoseError, ValueError, TypeError) as exc:
        raise IssuerKeyError(f"{path} is not an RSA key in PEM") from exc
    if not key.is_private:
        raise IssuerKeyError(f"{path} holds a public key; the issuer needs the private key")
    return _with_kid(key)


def development_key(var_dir: Path) -> RSAKey:
    return _with_kid(load_or_create_key(var_dir / "keys", DEV_KEY_FILE))


def _with_kid(key: RSAKey) -> RSAKey:
    # The RFC 7638 thumbprint: a new key file gets a new kid by itself, so
    # a token signed by a replaced key is "unknown key", never a bad signature.
    return RSAKey.import_key(key.as_dict(private=True), {"kid": key.thumbprint()})


@dataclass(frozen=True)
class GatewayIssuer:
    url: str
    audience: str
    key: RSAKey = field(repr=False)  # the private key
    lifetime: int = 900  # seconds

    @property
    def token_endpoint(self) -> str:
        return self.url.rstrip("/") + TOKEN_PATH

    @property
    def jwks_uri(self) -> str:
        return self.url.rstrip("/") + JWKS_PATH

    @property
    def public_key(self) -> RSAKey:
        return RSAKey.import_key(self.key.as_dict(private=False))

    def jwks(self) -> dict[str, Any]:
        return dict(KeySet([self.public_key]).as_dict(private=False, use="sig", alg="RS256"))

    def trusted(self, resolve: Callable[[Mapping[str, Any]], Awaitable[Principal]]) -> Issuer:
        """The gateway's own tokens, checked like any issuer's, then ``resolve``d."""
        return Issuer(self.url, self.audience, StaticKeys(self.public_key), resolve=resolve)
