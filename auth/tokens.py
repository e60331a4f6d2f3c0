"""Turn a bearer token into a Principal, or say precisely why not.

Access tokens are JWTs in the RFC 9068 shape (``typ: at+jwt``) from issuers
trusted by configuration: the development issuer (development only), an
OpenID Connect provider (``KHAALGA_OIDC_ISSUER``) and the gateway's own
developer-program issuer (auth/apps). Only asymmetric
algorithms are accepted: ``none`` carries no signature, and an HS* token
"signed" with the provider's *public* key would verify against it.
"""

from __future__ import annotations

import json
import time
from collections.abc import Awaitable, Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from cachetools import TLRUCache
from joserfc import jwt
from joserfc.errors import JoseError
from joserfc.jwk import RSAKey
from joserfc.jws import extract_compact

from auth.dev_issuer import AUDIENCE, DEV_ISSUER, ENV_CLAIM, PRODUCTION, SANDBOX
from auth.keys import KeySource, KeyUnavailable, StaticKeys
from auth.principal import Principal, PrincipalKind

ALGORITHMS = ("RS256", "RS384", "RS512", "PS256", "PS384", "PS512", "ES256", "ES384")
TOKEN_TYPES = frozenset({"at+jwt", "application/at+jwt"})
LEEWAY = 30  # seconds of clock skew tolerated on exp / nbf / iat
# Verified tokens kept (raw token -> issuer and claims) so a client sending the
# same token again skips the RSA check and the JOSE parsing; each entry lives
# until the token's ``exp`` (without leeway) and at most VERIFIED_SECONDS, so
# an issuer's key withdrawal reaches cached tokens within that time too.
VERIFIED_MAX = 10_000
VERIFIED_SECONDS = 60.0


class InvalidToken(Exception):
    """The token is present but cannot be trusted; the message is safe to show."""


class IssuerUnavailable(Exception):
    """The token cannot be checked now (the issuer's keys, or the records it
    is checked against, cannot be reached); it may well be valid, so this is
    the gateway's failure (503), not the client's (401)."""

    def __init__(self, message: str, retry_after: float) -> None:
        super().__init__(message)
        self.retry_after = retry_after


@dataclass(frozen=True, slots=True)
class Issuer:
    name: str
    audience: str
    keys: KeySource
    # After the signature and claims are checked: claims -> principal, for an
    # issuer whose tokens must be checked against current records (the
    # gateway's own, auth/apps). Without it the claims alone decide.
    resolve: Callable[[Mapping[str, Any]], Awaitable[Principal]] | None = None


class TokenValidator:
    def __init__(self, issuers: Iterable[Issuer]) -> None:
        self.issuers = {issuer.name: issuer for issuer in issuers}
        self._verified: TLRUCache[str, _Verified] = TLRUCache(VERIFIED_MAX, _until, timer=time.time)

    @classmethod
    def development(cls, key: RSAKey) -> TokenValidator:
        return cls([dev_issuer(key)])

    async def principal(self, token: str) -> Principal:
        verified = self._verified.get(token)
        if verified is not None:
            # Only the signature and claim checks are skipped: ``resolve``
            # (an app's current status, revocations) still runs every time.
            return await _principal(verified.issuer, verified.claims)
        header, unverified = _unverified(token)
        if header.get("alg") not in ALGORITHMS:
            raise InvalidToken("token algorithm is not allowed")
        if str(header.get("typ", "")).lower() not in TOKEN_TYPES:
            raise InvalidToken("token is not a JWT access token (typ at+jwt)")
        issuer = self.issuers.get(str(unverified.get("iss")))
        if issuer is None:
            raise InvalidToken("token issuer is not trusted")
        kid = header.get("kid")
        try:
            keys = await issuer.keys.key_set(str(kid) if kid is not None else None)
        except KeyUnavailable as exc:
            raise IssuerUnavailable(str(exc), exc.retry_after) from exc
        if kid is not None and kid not in {k.kid for k in keys}:
            raise InvalidToken("token signing key is unknown")
        try:
            claims = jwt.decode(token, keys, list(ALGORITHMS)).claims
            jwt.JWTClaimsRegistry(
                leeway=LEEWAY,
                iss={"essential": True, "value": issuer.name},
                aud={"essential": True, "value": issuer.audience},
                exp={"essential": True},
                sub={"essential": True},
            ).validate(claims)
        except (JoseError, ValueError) as exc:
            raise InvalidToken(f"token rejected: {type(exc).__name__}") from exc
        self._verified[token] = _Verified(issuer, claims, time.time())
        return await _principal(issuer, claims)


@dataclass(frozen=True, slots=True)
class _Verified:
    issuer: Issuer
    claims: Mapping[str, Any]
    at: float  # when it was verified


def _until(_token: str, verified: _Verified, _now: float) -> float:
    return min(float(verified.claims["exp"]), verified.at + VERIFIED_SECONDS)


async def _principal(issuer: Issuer, claims: Mapping[str, Any]) -> Principal:
    if issuer.resolve is not None:
        return await issuer.resolve(claims)
    return principal_of(claims)


def dev_issuer(key: RSAKey) -> Issuer:
    return Issuer(DEV_ISSUER, AUDIENCE, StaticKeys(key))


def _unverified(token: str) -> tuple[Mapping[str, Any], Mapping[str, Any]]:
    # Only the header and the issuer are read before the signature is
    # checked, to pick the issuer's keys; nothing else is trusted yet.
    try:
        compact = extract_compact(token.encode())
        payload = json.loads(compact.payload)
    except (JoseError, ValueError) as exc:
        raise InvalidToken("token format is invalid") from exc
    if not isinstance(payload, dict):
        raise InvalidToken("token format is invalid")
    return compact.headers(), payload


def principal_of(claims: Mapping[str, Any]) -> Principal:
    """Claims -> Principal. A client-credentials token (RFC 9068 2.2: ``sub``
    is the client id) is always an APP: a client cannot claim a user kind."""
    subject = str(claims["sub"])
    scopes = frozenset(str(claims.get("scope", "")).split())
    if claims.get("client_id") == subject:
        return Principal(PrincipalKind.APP, subject, None, scopes, sandbox=_sandbox(claims))
    if "khaalga_kind" not in claims:
        raise InvalidToken("token does not say what kind of user it is for")
    try:
        kind = PrincipalKind(claims["khaalga_kind"])
    except ValueError as exc:
        raise InvalidToken("token has an unknown principal kind") from exc
    if kind is PrincipalKind.ANONYMOUS:
        raise InvalidToken("token has an unknown principal kind")
    agency = claims.get("agency")
    if kind is PrincipalKind.OFFICER and not agency:
        raise InvalidToken("an officer's token must name the agency")
    # Only an app can be a sandbox one: a citizen or an officer is a real person.
    sandbox = _sandbox(claims) if kind is PrincipalKind.APP else False
    return Principal(kind, subject, str(agency) if agency else None, scopes, sandbox=sandbox)


def _sandbox(claims: Mapping[str, Any]) -> bool:
    """A misspelt environment is refused rather than read as production: a
    sandbox app's made-up requests must never reach a real agency."""
    env = claims.get(ENV_CLAIM, PRODUCTION)
    if env not in (SANDBOX, PRODUCTION):
        raise InvalidToken(f"token has an unknown {ENV_CLAIM}")
    return bool(env == SANDBOX)
