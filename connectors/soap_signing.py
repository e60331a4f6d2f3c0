"""XYP-style request signing for SOAP back ends.

Every request carries ``accessToken``, ``timeStamp`` (Unix seconds) and
``signature``: base64 RSA-SHA256 (PKCS#1 v1.5) over ``accessToken + "." +
timeStamp``. Signer and verifier share this module so the signed text can
never drift between the gateway and the simulated agencies.
"""

from __future__ import annotations

import base64
import binascii
import functools
import time
from pathlib import Path

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import padding, rsa


def signed_text(token: str, timestamp: str) -> bytes:
    return f"{token}.{timestamp}".encode()


def load_private_key(path: Path) -> rsa.RSAPrivateKey:
    key = serialization.load_pem_private_key(path.read_bytes(), password=None)
    if not isinstance(key, rsa.RSAPrivateKey):
        raise ValueError(f"{path.name}: not an RSA private key")
    return key


def load_public_key(path: Path) -> rsa.RSAPublicKey:
    key = serialization.load_pem_public_key(path.read_bytes())
    if not isinstance(key, rsa.RSAPublicKey):
        raise ValueError(f"{path.name}: not an RSA public key")
    return key


def sign(key: rsa.RSAPrivateKey, token: str, timestamp: str) -> str:
    raw = key.sign(signed_text(token, timestamp), padding.PKCS1v15(), hashes.SHA256())
    return base64.b64encode(raw).decode("ascii")


def verify(key: rsa.RSAPublicKey, token: str, timestamp: str, signature: str) -> bool:
    try:
        raw = base64.b64decode(signature, validate=True)
        key.verify(raw, signed_text(token, timestamp), padding.PKCS1v15(), hashes.SHA256())
    except (InvalidSignature, binascii.Error, ValueError):
        return False
    return True


def headers(key: rsa.RSAPrivateKey, token: str, now: float | None = None) -> dict[str, str]:
    """The three XYP headers for one request, signed now."""
    timestamp = str(int(time.time() if now is None else now))
    signature = _signature(key, token, timestamp)
    return {"accessToken": token, "timeStamp": timestamp, "signature": signature}


# An RSA signature costs ~0.4 ms of CPU, while the signed text changes once a
# second and PKCS#1 v1.5 is deterministic: every request of one second would
# carry the same signature anyway, so it is made once per key, token and second.
@functools.lru_cache(maxsize=64)
def _signature(key: rsa.RSAPrivateKey, token: str, timestamp: str) -> str:
    return sign(key, token, timestamp)
