"""Secrets the service must show or use again later, kept encrypted at rest.

Fernet (AES-128-CBC with HMAC-SHA256) under keys that are never in the database: those of
STOWAGE_SECRETS_KEY (comma-separated; the first encrypts, the others still decrypt while a
rotation runs; each a Fernet key, or any text a key is derived from with HKDF-SHA256), or, when
that is unset, keys derived from SECRET_KEY and its fallbacks. A database dump alone decrypts
nothing. A ciphertext made under a key no longer configured cannot be read: ``decrypt`` answers
None and callers say the secret is gone.
"""

from __future__ import annotations

import base64
import binascii
from functools import lru_cache

from cryptography.fernet import Fernet, InvalidToken, MultiFernet
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.kdf.hkdf import HKDF
from django.conf import settings

_INFO = b"stowage secrets v1"


def _key(material: str) -> Fernet:
    try:
        return Fernet(material.encode())
    except (ValueError, binascii.Error):
        derived = HKDF(algorithm=hashes.SHA256(), length=32, salt=None, info=_INFO).derive(material.encode())
        return Fernet(base64.urlsafe_b64encode(derived))


@lru_cache(maxsize=8)
def _fernet(materials: tuple[str, ...]) -> MultiFernet:
    if not materials:
        raise RuntimeError("neither STOWAGE_SECRETS_KEY nor SECRET_KEY is set")
    return MultiFernet([_key(material) for material in materials])


def _keys() -> MultiFernet:
    configured = [key.strip() for key in (getattr(settings, "STOWAGE_SECRETS_KEY", "") or "").split(",")]
    materials = [key for key in configured if key]
    if not materials:
        materials = [key for key in [settings.SECRET_KEY, *settings.SECRET_KEY_FALLBACKS] if key]
    return _fernet(tuple(materials))


def encrypt(text: str) -> str:
    return _keys().encrypt(text.encode()).decode("ascii")


def decrypt(token: str) -> str | None:
    """The plain text, or None if it was made under a key no longer configured or was altered."""
    try:
        return _keys().decrypt(token.encode("ascii")).decode()
    except (InvalidToken, ValueError):
        return None
