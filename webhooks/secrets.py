"""Webhook secrets, encrypted at rest.

Fernet (AES-128-CBC with HMAC-SHA256) under a key that is never in the database: the first of
``STOWAGE_SECRETS_KEY`` (comma-separated Fernet keys; the others still decrypt while a rotation
runs), or, when that is unset, a key derived with HKDF-SHA256 from ``SECRET_KEY`` (and its
fallbacks, which still decrypt). A database dump alone yields no working secret.
"""

from __future__ import annotations

import base64
import secrets as random

from cryptography.fernet import Fernet, InvalidToken, MultiFernet
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.kdf.hkdf import HKDF
from django.conf import settings

SECRET_PREFIX = "whsec_"  # noqa: S105 - the format's prefix, not a secret
SECRET_BYTES = 32
_HKDF_INFO = b"stowage webhook secrets v1"


def _derived_key(secret_key: str) -> bytes:
    hkdf = HKDF(algorithm=hashes.SHA256(), length=32, salt=None, info=_HKDF_INFO)
    return base64.urlsafe_b64encode(hkdf.derive(secret_key.encode()))


def _fernet() -> MultiFernet:
    configured = [key.strip() for key in settings.STOWAGE_SECRETS_KEY.split(",") if key.strip()]
    if configured:
        keys = [key.encode() for key in configured]
    else:
        keys = [_derived_key(key) for key in [settings.SECRET_KEY, *settings.SECRET_KEY_FALLBACKS]]
    return MultiFernet([Fernet(key) for key in keys])


def generate_secret() -> str:
    return SECRET_PREFIX + base64.b64encode(random.token_bytes(SECRET_BYTES)).decode()


def encrypt_secret(secret: str) -> str:
    return _fernet().encrypt(secret.encode()).decode()


class SecretUnreadable(Exception):
    """The secret was encrypted under a key this process no longer has."""


def decrypt_secret(token: str) -> str:
    try:
        return _fernet().decrypt(token.encode()).decode()
    except InvalidToken:
        raise SecretUnreadable("the webhook secret cannot be decrypted with the configured keys") from None
