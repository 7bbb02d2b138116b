"""Presigned download URLs for storage that cannot sign its own (the local filesystem).

The signature is an HMAC over the artifact id, the expiry and the key version; keys are
listed newest first in STOWAGE_URL_SIGNING_KEYS, so a key can be rotated out gently.
"""

from __future__ import annotations

import hashlib
import hmac
import math
import time
from functools import lru_cache

from django.conf import settings
from django.utils.crypto import salted_hmac


@lru_cache(maxsize=1)
def signing_keys() -> dict[str, tuple[bytes, ...]]:
    """Each key version with its secrets: the first signs, any of them verifies."""
    keys: dict[str, tuple[bytes, ...]] = {}
    for entry in settings.URL_SIGNING_KEYS:
        version, _, secret = entry.partition(":")
        if version and secret:
            keys[version] = (secret.encode(),)
    if not keys:
        # Derived from SECRET_KEY, and from each of SECRET_KEY_FALLBACKS while a rotation runs.
        secrets = [settings.SECRET_KEY, *settings.SECRET_KEY_FALLBACKS]
        keys["0"] = tuple(
            salted_hmac("stowage.presigned-url", "key", secret=secret, algorithm="sha256").digest()
            for secret in secrets
        )
    return keys


def current_key_version() -> str:
    return next(iter(signing_keys()))


def _signature(key: bytes, artifact_id: str, expires: int, version: str) -> str:
    return hmac.new(key, f"{artifact_id}\n{expires}\n{version}".encode(), hashlib.sha256).hexdigest()


def sign(artifact_id: str, expires_in: int) -> dict[str, str]:
    # Rounded up, so a URL never dies before the full expires_in has passed.
    expires = math.ceil(time.time()) + expires_in
    version = current_key_version()
    return {
        "expires": str(expires),
        "kv": version,
        "sig": _signature(signing_keys()[version][0], artifact_id, expires, version),
    }


def verify(artifact_id: str, expires: str, version: str, signature: str) -> bool:
    keys = signing_keys().get(version)
    if keys is None or not expires.isdigit() or int(expires) < time.time():
        return False
    # Every key is tried, so the answer takes as long whichever one matches.
    matches = [hmac.compare_digest(_signature(key, artifact_id, int(expires), version), signature) for key in keys]
    return any(matches)
