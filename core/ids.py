"""Public identifiers: a short type prefix and 128 random bits, URL-safe and unguessable."""

from __future__ import annotations

import secrets

_ALPHABET = "0123456789abcdefghijklmnopqrstuvwxyz"


def new_id(prefix: str, nbytes: int = 16) -> str:
    number = int.from_bytes(secrets.token_bytes(nbytes), "big")
    digits = []
    while number:
        number, rem = divmod(number, 36)
        digits.append(_ALPHABET[rem])
    return f"{prefix}_{''.join(reversed(digits)).rjust(25, '0')}"
