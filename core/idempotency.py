"""Safe retries: a POST sent with an ``Idempotency-Key`` runs once; a retry with the same key
within a day gets the first answer again, and the same key with another request is refused.

The SDK retries every 5xx and every timeout, POSTs included, so without this a lost answer
could run a command twice or make a second sandbox. ``config.middleware.IdempotencyMiddleware``
calls these around each such request.
"""

from __future__ import annotations

import hashlib
import re
import time
from dataclasses import dataclass
from datetime import datetime, timedelta

from django.conf import settings
from django.db import IntegrityError, transaction
from django.utils import timezone

from core.errors import Conflict, InvalidInput, StowageError
from core.models import IdempotentRequest

HEADER = "Idempotency-Key"
RETENTION = timedelta(hours=24)
_KEY = re.compile(r"^[\x21-\x7e]{1,255}$")
# Answers that say nothing was done: a retry with the same key must run afresh, not see them again.
NOT_KEPT_STATUSES = frozenset({429, 503})
POLL_SECONDS = 0.2


@dataclass(frozen=True)
class Outcome:
    """Either ``run`` the request (and ``finish`` the record with its answer) or ``replay`` the record."""

    record: IdempotentRequest
    replay: bool


def check_key(key: str) -> str:
    if not _KEY.match(key):
        raise InvalidInput(
            f"{HEADER} must be 1 to 255 visible ASCII characters (a UUID is a good choice)",
            code="INVALID_IDEMPOTENCY_KEY",
            details={"header": HEADER},
        )
    return key


def request_fingerprint(*, method: str, path: str, query: str, body: bytes) -> str:
    digest = hashlib.sha256()
    for part in (method.encode(), path.encode(), query.encode()):
        digest.update(len(part).to_bytes(8, "big") + part)
    digest.update(hashlib.sha256(body).digest())
    return digest.hexdigest()


def idempotency_begin(
    *, organization_id: str, key: str, fingerprint: str, method: str, path: str, now: datetime | None = None
) -> Outcome:
    """Claim the key for this request, or find the answer a first request with it gave.

    A first request still running is waited for a little (a retry usually follows a lost answer
    closely); after that the retry is refused with 409, and retrying later gets the answer.
    """
    deadline = time.monotonic() + settings.IDEMPOTENCY_WAIT_SECONDS
    while True:
        outcome = _claim_or_find(
            organization_id=organization_id, key=key, fingerprint=fingerprint, method=method, path=path, now=now
        )
        if outcome is not None:
            return outcome
        if time.monotonic() >= deadline:
            raise Conflict(
                f"a request with this {HEADER} is still running; retry shortly to get its answer",
                code="IDEMPOTENCY_KEY_IN_USE",
            )
        time.sleep(POLL_SECONDS)


def _claim_or_find(
    *, organization_id: str, key: str, fingerprint: str, method: str, path: str, now: datetime | None
) -> Outcome | None:
    now = now or timezone.now()
    lease = now + timedelta(seconds=settings.IDEMPOTENCY_LEASE_SECONDS)
    try:
        with transaction.atomic():
            record = IdempotentRequest.objects.create(
                organization_id=organization_id,
                key=key,
                fingerprint=fingerprint,
                method=method,
                path=path[:2048],
                created_at=now,
                locked_until=lease,
            )
        return Outcome(record, replay=False)
    except IntegrityError:
        pass
    record = IdempotentRequest.objects.filter(organization_id=organization_id, key=key).first()
    if record is None:
        return None  # released meanwhile: claim it on the next turn
    if record.created_at < now - RETENTION:
        IdempotentRequest.objects.filter(id=record.id, created_at=record.created_at).delete()
        return None
    if record.fingerprint != fingerprint:
        raise StowageError(
            f"this {HEADER} was already used for a different request ({record.method} {record.path}); use a new key",
            code="IDEMPOTENCY_KEY_REUSED",
            status=422,
        )
    if record.completed_at is not None:
        if not record.replayable:
            raise Conflict(
                f"the first request with this {HEADER} answered with a stream, which is not kept; it was not run again",
                code="IDEMPOTENT_ANSWER_NOT_KEPT",
            )
        return Outcome(record, replay=True)
    # Its process died while holding it: the retry takes it over, once.
    if record.locked_until < now and IdempotentRequest.objects.filter(
        id=record.id, completed_at__isnull=True, locked_until=record.locked_until
    ).update(locked_until=lease):
        record.refresh_from_db()
        return Outcome(record, replay=False)
    return None


def idempotency_finish(*, record: IdempotentRequest, status: int, content_type: str, body: bytes | None) -> None:
    """Keep the answer for retries; ``body`` None for a streamed answer, which cannot be kept."""
    if status in NOT_KEPT_STATUSES:
        idempotency_release(record=record)
        return
    keep = body is not None and len(body) <= settings.IDEMPOTENCY_MAX_BODY_BYTES
    IdempotentRequest.objects.filter(id=record.id).update(
        status=status,
        content_type=content_type[:255],
        body=body if keep else b"",
        replayable=keep,
        completed_at=timezone.now(),
    )


def idempotency_release(*, record: IdempotentRequest) -> None:
    IdempotentRequest.objects.filter(id=record.id, completed_at__isnull=True).delete()


def idempotency_expire(*, now: datetime | None = None) -> int:
    now = now or timezone.now()
    deleted, _ = IdempotentRequest.objects.filter(created_at__lt=now - RETENTION).delete()
    return deleted
