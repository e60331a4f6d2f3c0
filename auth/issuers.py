"""Which issuers the gateway trusts, from settings.

The development issuer only when ``KHAALGA_ENV=development``; the OpenID
Connect provider ``KHAALGA_OIDC_ISSUER`` in any environment; the gateway's
own developer-program issuer when it has a signing key (``extra``, from
auth/apps). A production gateway with none of them trusts no token at all.
"""

from __future__ import annotations

from collections.abc import Iterable

from auth.dev_issuer import load_or_create_key
from auth.oidc import OidcKeys
from auth.tokens import Issuer, TokenValidator, dev_issuer
from gateway.settings import Settings


def token_validator(settings: Settings, extra: Iterable[Issuer] = ()) -> TokenValidator:
    issuers: list[Issuer] = list(extra)
    if settings.development:
        issuers.append(dev_issuer(load_or_create_key(settings.var_dir / "keys")))
    if settings.oidc_issuer:
        keys = OidcKeys(settings.oidc_issuer, min_refresh=settings.oidc_min_refresh)
        issuers.append(Issuer(settings.oidc_issuer, settings.oidc_audience, keys))
    return TokenValidator(issuers)
