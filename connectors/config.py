"""Deployment configuration of one agency's back end (not catalog data)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True, slots=True)
class Timeouts:
    connect: float = 2.0
    read: float = 10.0
    total: float = 15.0


@dataclass(frozen=True, slots=True)
class BackendEndpoint:
    """Where and how to reach one agency's back end.

    ``url`` by kind: SOAP the WSDL address; REST the API base address; SQL an
    SQLAlchemy async URL of the agency's database; FILE ``file:///`` + the
    agency's exchange folder.
    """

    url: str
    api_key: str | None = None  # REST: sent in the dialect's api_key_header
    access_token: str | None = None  # SOAP: XYP accessToken header
    signing_key: Path | None = None  # SOAP: the gateway's RSA private key (PEM)
    verify_key: Path | None = None  # SOAP simulator: the gateway's public key (PEM)
