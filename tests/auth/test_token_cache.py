"""Verified tokens are remembered until they expire, and only the signature
and claim checks are skipped: what the issuer's records say still decides."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

import pytest
from joserfc import jwt

from auth import dev_issuer
from auth.keys import StaticKeys
from auth.principal import Principal, PrincipalKind
from auth.tokens import InvalidToken, Issuer, TokenValidator, principal_of


@pytest.fixture
def key(tmp_path: Path) -> Any:
    return dev_issuer.load_or_create_key(tmp_path / "keys")


@pytest.fixture
def decodes(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """Each signature check the validator makes."""
    seen: list[str] = []
    real = jwt.decode

    def counting(value: Any, *args: Any, **kwargs: Any) -> Any:
        seen.append(str(value))
        return real(value, *args, **kwargs)

    monkeypatch.setattr(jwt, "decode", counting)
    return seen


async def test_a_token_is_verified_once(key: Any, decodes: list[str]) -> None:
    validator = TokenValidator.development(key)
    token = dev_issuer.issue(key, dev_issuer.citizen("УБ99010112"))
    first = await validator.principal(token)
    second = await validator.principal(token)
    assert first == second
    assert first.kind is PrincipalKind.CITIZEN
    assert len(decodes) == 1


async def test_another_token_is_verified_on_its_own(key: Any, decodes: list[str]) -> None:
    validator = TokenValidator.development(key)
    await validator.principal(dev_issuer.issue(key, dev_issuer.citizen("УБ99010112")))
    other = await validator.principal(dev_issuer.issue(key, dev_issuer.citizen("ТА85122304")))
    assert other.subject == "ТА85122304"
    assert len(decodes) == 2


async def test_a_token_past_its_exp_is_never_served_from_the_cache(
    key: Any, decodes: list[str]
) -> None:
    # Still inside the validator's clock-skew leeway, so it verifies; but its
    # exp has passed, so it is checked again every time.
    validator = TokenValidator.development(key)
    token = dev_issuer.issue(key, dev_issuer.citizen("УБ99010112"), lifetime=-5)
    await validator.principal(token)
    await validator.principal(token)
    assert len(decodes) == 2


async def test_a_refused_token_is_not_remembered(key: Any, tmp_path: Path) -> None:
    validator = TokenValidator.development(key)
    stranger = dev_issuer.load_or_create_key(tmp_path / "other", kid="dev-1")
    token = dev_issuer.issue(stranger, dev_issuer.citizen("УБ99010112"))
    for _ in range(2):
        with pytest.raises(InvalidToken):
            await validator.principal(token)


async def test_the_issuers_records_decide_on_every_request(key: Any) -> None:
    """An app suspended after its token was verified is refused at once."""
    active = True
    calls = 0

    async def resolve(claims: Mapping[str, Any]) -> Principal:
        nonlocal calls
        calls += 1
        if not active:
            raise InvalidToken("the app is not active")
        return principal_of(claims)

    validator = TokenValidator(
        [Issuer(dev_issuer.DEV_ISSUER, dev_issuer.AUDIENCE, StaticKeys(key), resolve=resolve)]
    )
    token = dev_issuer.issue(key, dev_issuer.citizen("УБ99010112"))
    await validator.principal(token)
    active = False
    with pytest.raises(InvalidToken):
        await validator.principal(token)
    assert calls == 2
