"""Secrets the service must show again later, kept encrypted at rest.

Fernet (AES-128-CBC with HMAC-SHA256) under a key derived by HKDF from STOWAGE_SECRETS_KEY, or
SECRET_KEY when that is not set: a database dump alone decrypts nothing. Changing the key makes
earlier ciphertexts unreadable; ``decrypt`` then answers None and callers say the secret is gone.
"""

from __future__ import annotations

import base64
from functools import lru_cache

from cryptography.fernet import Fernet, InvalidToken
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.kdf.hkdf import HKDF
from django.conf import settings

_INFO = b"stowage secrets v1"


@lru_cache(maxsize=4)
def _fernet(master: str) -> Fernet:
    key = HKDF(algorithm=hashes.SHA256(), length=32, salt=None, info=_INFO).derive(master.encode())
    return Fernet(base64.urlsafe_b64encode(key))


def _master() -> str:
    master = getattr(settings, "STOWAGE_SECRETS_KEY", "") or settings.SECRET_KEY
    if not master:
        raise RuntimeError("neither STOWAGE_SECRETS_KEY nor SECRET_KEY is set")
    return master


def encrypt(text: str) -> str:
    return _fernet(_master()).encrypt(text.encode()).decode("ascii")


def decrypt(token: str) -> str | None:
    """The plain text, or None if it was made under another key or was altered."""
    try:
        return _fernet(_master()).decrypt(token.encode("ascii")).decode()
    except (InvalidToken, ValueError):
        return None
