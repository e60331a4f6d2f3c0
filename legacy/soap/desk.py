"""The agency behind the SOAP service: who may call, and what it answers."""

from __future__ import annotations

import datetime as dt
import decimal
import time
from collections.abc import Callable, Mapping
from typing import Any

from cryptography.hazmat.primitives.asymmetric.rsa import RSAPublicKey

from connectors.soap_signing import verify
from gateway.catalog.model import FieldType
from legacy.control import Faults
from legacy.fakedata import fake_value
from legacy.records import AgencyRecords
from legacy.soap._spyne import Fault
from legacy.soap.service import Fields

MAX_SKEW = 300.0  # seconds a timeStamp may be off, either way
MISSING_SUFFIX = "000000"
"""A lookup whose text value ends in this finds no record (Client.NotFound)."""


class AgencyDesk:
    def __init__(
        self,
        records: AgencyRecords,
        access_token: str,
        verify_key: RSAPublicKey,
        faults: Callable[[], Faults],
        clock: Callable[[], float] = time.time,
    ) -> None:
        self._records = records
        self._token = access_token
        self._key = verify_key
        self._faults = faults
        self._clock = clock

    def admit(self, in_header: Any) -> None:
        if self._faults().down:
            raise Fault("Server.Unavailable", "Service temporarily unavailable")
        values = [getattr(h, "value", None) for h in (in_header or ())]
        texts = [v for v in values if isinstance(v, str) and v]
        if len(texts) != 3:
            raise Fault("Client.Authentication", "accessToken, timeStamp and signature required")
        token, stamp, signature = texts
        if token != self._token:
            raise Fault("Client.Authentication", "Access token refused")
        try:
            skew = abs(self._clock() - float(stamp))
        except ValueError:
            skew = float("inf")
        if skew > MAX_SKEW:
            raise Fault("Client.Authentication", "Time stamp outside the allowed window")
        if not verify(self._key, token, stamp, signature):
            raise Fault("Client.Authentication", "Signature does not verify")

    def lookup(self, operation: str, request: dict[str, Any], results: Fields) -> list[Any]:
        if any(isinstance(v, str) and v.endswith(MISSING_SUFFIX) for v in request.values()):
            raise Fault("Client.NotFound", "No such record")
        seed = "|".join([operation, *(f"{k}={_canonical(v)}" for k, v in sorted(request.items()))])
        return [_as_sent(kind, fake_value(kind, f"{seed}|{name}")) for name, kind in results]

    def submit(self, operation: str, request: dict[str, Any], key: str) -> tuple[str, str]:
        filing = self._records.file(key, operation, _jsonable(request))
        return filing.reference, "DELIVERED"

    def status(self, reference: str) -> tuple[str, str | None]:
        state = self._records.status(reference)
        if state is None:
            raise Fault("Client.UnknownReference", "No application with this reference")
        return state


def _canonical(value: Any) -> str:
    """The same text for equal values however they were typed (12 vs 12.0)."""
    if value is None:
        return ""
    if isinstance(value, decimal.Decimal):
        return format(value.normalize(), "f")
    if isinstance(value, dt.date):
        return value.isoformat()
    return str(value)


def _as_sent(kind: FieldType, value: Any) -> Any:
    return decimal.Decimal(value) if kind is FieldType.AMOUNT else value


def _jsonable(request: Mapping[str, Any]) -> dict[str, Any]:
    return {
        k: _canonical(v) if isinstance(v, decimal.Decimal | dt.date) else v
        for k, v in request.items()
    }
