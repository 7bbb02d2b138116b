"""Public identifiers: a short type prefix and 128 random bits, URL-safe and unguessable.

``new_ids`` draws many at once for rows inserted together (a folder's blobs): 80 random bits
after the time in milliseconds, in the same 25 digits, so that ids made later sort later and the
rows' index entries land at the end of their indexes instead of on a random page each.
"""

from __future__ import annotations

import secrets
import time

_ALPHABET = "0123456789abcdefghijklmnopqrstuvwxyz"
_RANDOM_BITS = 80  # of 128 in a time-ordered id; the time in ms fills the other 48 until 10889


def _shown(prefix: str, number: int) -> str:
    digits = []
    while number:
        number, rem = divmod(number, 36)
        digits.append(_ALPHABET[rem])
    return f"{prefix}_{''.join(reversed(digits)).rjust(25, '0')}"


def new_id(prefix: str, nbytes: int = 16) -> str:
    return _shown(prefix, int.from_bytes(secrets.token_bytes(nbytes), "big"))


def _now_ms() -> int:
    return time.time_ns() // 1_000_000


def new_ids(prefix: str, count: int) -> list[str]:
    """``count`` ids of ``new_id``'s shape from one draw of random bytes (thousands of blobs would
    otherwise ask the kernel once each), time-ordered (see above)."""
    stamp = (_now_ms() & ((1 << 48) - 1)) << _RANDOM_BITS
    step = _RANDOM_BITS // 8
    pool = secrets.token_bytes(step * count)
    return [_shown(prefix, stamp | int.from_bytes(pool[i : i + step], "big")) for i in range(0, step * count, step)]
