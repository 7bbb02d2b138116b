"""Standard Webhooks signatures (https://www.standardwebhooks.com), made by the
``standardwebhooks`` package that receivers verify with."""

from __future__ import annotations

import base64
from datetime import datetime

from standardwebhooks import Webhook as StandardWebhook

from webhooks.secrets import SECRET_PREFIX

ID_HEADER = "webhook-id"
TIMESTAMP_HEADER = "webhook-timestamp"
SIGNATURE_HEADER = "webhook-signature"
SIGNED_HEADERS = frozenset({ID_HEADER, TIMESTAMP_HEADER, SIGNATURE_HEADER})


def signing_key(secret: str) -> bytes:
    """A ``whsec_`` secret is base64 of its key; any other secret is its own UTF-8 bytes (verify
    with ``Webhook(secret.encode())``)."""
    if secret.startswith(SECRET_PREFIX):
        return base64.b64decode(secret[len(SECRET_PREFIX) :] + "==")
    return secret.encode()


def sign_headers(*, message_id: str, timestamp: datetime, body: str, secrets: list[str]) -> dict[str, str]:
    """The three headers; one signature per secret (two during a rotation), space-separated."""
    signatures = [StandardWebhook(signing_key(secret)).sign(message_id, timestamp, body) for secret in secrets]
    return {
        ID_HEADER: message_id,
        TIMESTAMP_HEADER: str(int(timestamp.timestamp())),
        SIGNATURE_HEADER: " ".join(signatures),
    }
