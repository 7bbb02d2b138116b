"""Webhook secrets: made here (``whsec_`` and 32 random bytes), kept encrypted at rest by
core/secrets.py, so a database dump alone yields no working secret."""

from __future__ import annotations

import base64
import secrets as random

from core import secrets as sealed

SECRET_PREFIX = "whsec_"  # noqa: S105 - the format's prefix, not a secret
SECRET_BYTES = 32


def generate_secret() -> str:
    return SECRET_PREFIX + base64.b64encode(random.token_bytes(SECRET_BYTES)).decode()


def encrypt_secret(secret: str) -> str:
    return sealed.encrypt(secret)


class SecretUnreadable(Exception):
    """The secret was encrypted under a key this process no longer has."""


def decrypt_secret(token: str) -> str:
    secret = sealed.decrypt(token)
    if secret is None:
        raise SecretUnreadable("the webhook secret cannot be decrypted with the configured keys")
    return secret
