"""Public identifiers: a short type prefix and 128 random bits, URL-safe and unguessable."""

from __future__ import annotations

import secrets

_ALPHABET = "0123456789abcdefghijklmnopqrstuvwxyz"


def _shown(prefix: str, number: int) -> str:
    digits = []
    while number:
        number, rem = divmod(number, 36)
        digits.append(_ALPHABET[rem])
    return f"{prefix}_{''.join(reversed(digits)).rjust(25, '0')}"


def new_id(prefix: str, nbytes: int = 16) -> str:
    return _shown(prefix, int.from_bytes(secrets.token_bytes(nbytes), "big"))


def new_ids(prefix: str, count: int) -> list[str]:
    """``count`` ids as ``new_id`` makes them, from one draw of random bytes (a folder's thousands
    of blobs would otherwise ask the kernel once each)."""
    pool = secrets.token_bytes(16 * count)
    return [_shown(prefix, int.from_bytes(pool[i : i + 16], "big")) for i in range(0, 16 * count, 16)]
