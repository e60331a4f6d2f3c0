"""The gateway's development RSA key pair, made on first use.

Several simulators (one per SOAP agency, possibly in separate processes)
share one key folder, so creation must be race-free: the private key is
published with ``os.link``, which fails if another process won, and the
public key is always derived from whichever private key is on disk.
"""

from __future__ import annotations

import contextlib
import os
import tempfile
from pathlib import Path

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa

from connectors.soap_signing import load_private_key

PRIVATE_NAME = "gateway-private.pem"
PUBLIC_NAME = "gateway-public.pem"


def ensure_keypair(directory: Path) -> tuple[Path, Path]:
    """(private, public) PEM paths in ``directory``; generated if missing."""
    directory.mkdir(parents=True, exist_ok=True)
    private, public = directory / PRIVATE_NAME, directory / PUBLIC_NAME
    if not private.exists():
        key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
        pem = key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
        _publish(private, pem, mode=0o600, replace=False)
    if not public.exists():
        pem = (
            load_private_key(private)
            .public_key()
            .public_bytes(
                serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
            )
        )
        _publish(public, pem, mode=0o644, replace=True)
    return private, public


def _publish(path: Path, content: bytes, *, mode: int, replace: bool) -> None:
    """Write ``content`` so that readers never see a partial file."""
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.")
    try:
        os.fchmod(fd, mode)
        with os.fdopen(fd, "wb") as out:
            out.write(content)
        if replace:
            os.replace(tmp, path)
        else:
            # If another process made the key first, theirs stands.
            with contextlib.suppress(FileExistsError):
                os.link(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)
