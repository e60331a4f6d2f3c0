"""Turn a bearer token into a Principal, or say precisely why not."""

from __future__ import annotations

import json

from joserfc import jwt
from joserfc.errors import JoseError
from joserfc.jwk import KeySet, RSAKey
from joserfc.jws import extract_compact

from auth.dev_issuer import AUDIENCE, DEV_ISSUER
from auth.principal import Principal, PrincipalKind

ALGORITHMS = ["RS256", "ES256", "PS256"]  # never "none", never HS*
LEEWAY = 60


class InvalidToken(Exception):
    """The token is present but cannot be trusted; the message is safe to show."""


class TokenValidator:
    def __init__(self, issuers: dict[str, KeySet | RSAKey], audience: str = AUDIENCE) -> None:
        self.issuers = issuers
        self.audience = audience

    @classmethod
    def development(cls, key: RSAKey) -> TokenValidator:
        return cls({DEV_ISSUER: key})

    def principal(self, token: str) -> Principal:
        try:
            # Read the issuer first (unverified) to pick that issuer's keys;
            # nothing else is trusted before the signature is checked.
            unverified = json.loads(extract_compact(token.encode()).payload)
        except (JoseError, ValueError) as exc:
            raise InvalidToken("token format is invalid") from exc
        issuer = str(unverified.get("iss")) if isinstance(unverified, dict) else ""
        key = self.issuers.get(issuer)
        if key is None:
            raise InvalidToken("token issuer is not trusted")
        try:
            token_obj = jwt.decode(token, key, ALGORITHMS)
            registry = jwt.JWTClaimsRegistry(
                leeway=LEEWAY,
                iss={"essential": True, "value": issuer},
                aud={"essential": True, "value": self.audience},
                exp={"essential": True},
                sub={"essential": True},
            )
            registry.validate(token_obj.claims)
        except (JoseError, ValueError) as exc:
            raise InvalidToken(f"token rejected: {type(exc).__name__}") from exc
        claims = token_obj.claims
        try:
            kind = PrincipalKind(claims.get("khaalga_kind", "APP"))
        except ValueError as exc:
            raise InvalidToken("token has an unknown principal kind") from exc
        if kind is PrincipalKind.ANONYMOUS:
            raise InvalidToken("token has an unknown principal kind")
        scopes = frozenset(str(claims.get("scope", "")).split())
        agency = claims.get("agency")
        return Principal(kind, str(claims["sub"]), str(agency) if agency else None, scopes)
