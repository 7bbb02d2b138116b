"""One attempt to send one event to one webhook: check the URL again, sign, POST to the checked
address, and read the first KiB of the answer. No redirect is followed."""

from __future__ import annotations

import json
import ssl
import time
from dataclasses import dataclass
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime

import certifi
import httpx
from django.utils import timezone

from webhooks.models import Webhook, WebhookEvent
from webhooks.network import UrlRefused, check_url
from webhooks.secrets import SecretUnreadable, decrypt_secret
from webhooks.signing import sign_headers

EXCERPT_BYTES = 1024
USER_AGENT = "Stowage-Webhooks/1"
_tls: ssl.SSLContext | None = None


def _tls_context() -> ssl.SSLContext:
    """One context for every attempt: building one loads the CA bundle, tens of milliseconds."""
    global _tls
    if _tls is None:
        _tls = ssl.create_default_context(cafile=certifi.where())
    return _tls


@dataclass
class AttemptResult:
    status: int | None = None
    latency_ms: int | None = None
    excerpt: str = ""
    error: str = ""
    retry_after: float | None = None
    # Nothing was sent (the URL was refused): the receiver never saw this attempt.
    sent: bool = True

    @property
    def succeeded(self) -> bool:
        return self.status is not None and 200 <= self.status < 300


def event_json(event: WebhookEvent) -> str:
    return json.dumps(event.payload, separators=(",", ":"), sort_keys=True)


def webhook_secrets(webhook: Webhook, *, now: datetime | None = None) -> list[str]:
    """The secret, and during a rotation's overlap the previous one too."""
    now = now or timezone.now()
    secrets = [decrypt_secret(webhook.secret_encrypted)]
    if (
        webhook.previous_secret_encrypted
        and webhook.previous_secret_expires_at is not None
        and webhook.previous_secret_expires_at > now
    ):
        secrets.append(decrypt_secret(webhook.previous_secret_encrypted))
    return secrets


def parse_retry_after(value: str | None, *, now: float | None = None) -> float | None:
    """Seconds to wait, from a number of seconds or an HTTP date; None if absent or unreadable."""
    if not value:
        return None
    value = value.strip()
    if value.isdigit():
        return float(value)
    try:
        when = parsedate_to_datetime(value)
    except (TypeError, ValueError, IndexError):
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    return max(0.0, when.timestamp() - (now if now is not None else time.time()))


def send_attempt(webhook: Webhook, event: WebhookEvent) -> AttemptResult:
    try:
        target = check_url(webhook.url)
    except UrlRefused as exc:
        return AttemptResult(error=f"refused: {exc.message}"[:500], sent=False)
    try:
        secrets = webhook_secrets(webhook)
    except SecretUnreadable as exc:
        return AttemptResult(error=str(exc), sent=False)
    body = event_json(event)
    headers = {
        **{str(k): str(v) for k, v in (webhook.headers or {}).items()},
        "Host": target.host_header,
        "Content-Type": "application/json",
        "User-Agent": USER_AGENT,
        **sign_headers(message_id=event.id, timestamp=datetime.now(UTC), body=body, secrets=secrets),
    }
    timeout = webhook.timeout_ms / 1000
    started = time.monotonic()
    result = AttemptResult()
    try:
        # trust_env off: a proxy from the environment would connect somewhere other than the
        # checked address. The TLS server name and certificate check use the URL's host.
        with (
            httpx.Client(timeout=timeout, follow_redirects=False, trust_env=False, verify=_tls_context()) as client,
            client.stream(
                "POST",
                target.pinned_url,
                content=body.encode(),
                headers=headers,
                extensions={"sni_hostname": target.host},
            ) as response,
        ):
            result.status = response.status_code
            result.retry_after = parse_retry_after(response.headers.get("retry-after"))
            excerpt = bytearray()
            deadline = started + timeout
            for chunk in response.iter_bytes():
                excerpt.extend(chunk)
                if len(excerpt) >= EXCERPT_BYTES or time.monotonic() > deadline:
                    break
            result.excerpt = bytes(excerpt[:EXCERPT_BYTES]).decode("utf-8", "replace").replace("\x00", "\ufffd")
        if not result.succeeded:
            result.error = f"HTTP {result.status}"
            if 300 <= result.status < 400:
                result.error += " (redirects are not followed)"
    except httpx.TimeoutException:
        result.error = f"timed out after {webhook.timeout_ms} ms"
    except httpx.HTTPError as exc:
        result.error = f"{type(exc).__name__}: {exc}"[:500]
    result.latency_ms = int((time.monotonic() - started) * 1000)
    return result
