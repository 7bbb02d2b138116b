"""Share links on the web side: created, resolved, downloaded and revoked; a worker activates them.

A link is found by a sha256 of its token, like an API key; the token itself is kept only
encrypted (core/secrets.py) so that managers can copy the link again, and a database dump alone
holds no working link. Failed lookups and wrong passwords are counted per client IP in the cache.
"""

from __future__ import annotations

import hashlib
import secrets
import time
from dataclasses import dataclass
from datetime import datetime, timedelta

from django.conf import settings
from django.contrib.auth.hashers import check_password, make_password
from django.core.cache import cache
from django.db import transaction
from django.db.models import F, Q
from django.http import HttpRequest
from django.urls import reverse
from django.utils import timezone

from artifacts.models import Artifact
from artifacts.services import artifact_record_read
from audit.refusals import audit_refusal
from audit.services import audit_record
from core import secrets as sealed
from core.actor import Actor
from core.dispatch import enqueue
from core.errors import Forbidden, InvalidInput, NotFound, StowageError
from core.text import check_text
from shares.events import share_emit
from shares.models import ShareLink, ShareLinkState
from shares.worker import activate_share_link

DEFAULT_EXPIRES_IN = 7 * 86400
MAX_EXPIRES_IN = 90 * 86400
MAX_DOWNLOADS = 1_000_000
MIN_PASSWORD_LENGTH = 8
MAX_PASSWORD_LENGTH = 1024
# 32 random bytes: 256 bits, 43 URL-safe characters.
TOKEN_BYTES = 32
MAX_TOKEN_LENGTH = 128
# How long a create waits for the worker to activate its link; past it the link is answered as
# pending and becomes active when the worker gets to it.
ACTIVATE_WAIT_SECONDS = 10
GUESS_WINDOW_SECONDS = 60
MAX_LABEL_LENGTH = 100
MAX_NOTE_LENGTH = 1000


class WrongPassword(Forbidden):
    code = "WRONG_PASSWORD"


class ShareUnavailable(NotFound):
    """Unknown, pending, revoked, expired or used up: callers answer all of them the same way."""

    code = "SHARE_NOT_FOUND"


def hash_share_token(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def share_url(request: HttpRequest, token: str) -> str:
    path = reverse("share-landing", args=[token])
    base = settings.PUBLIC_BASE_URL.rstrip("/")
    return f"{base}{path}" if base else request.build_absolute_uri(path)


def share_link_effective_state(link: ShareLink, *, now=None) -> str:
    """The stored state, or ``expired`` / ``exhausted`` for an active link that no longer works."""
    if link.state != ShareLinkState.ACTIVE:
        return link.state
    if link.expires_at is not None and link.expires_at <= (now or timezone.now()):
        return "expired"
    if link.max_downloads is not None and link.download_count >= link.max_downloads:
        return "exhausted"
    return link.state


def share_link_downloads_left(link: ShareLink) -> int | None:
    if link.max_downloads is None:
        return None
    return max(0, link.max_downloads - link.download_count)


def _check_int(value: object, field: str) -> int:
    # bool is an int to Python, never a sensible count or duration here.
    if isinstance(value, bool) or not isinstance(value, int):
        raise InvalidInput(f"{field} must be a whole number", details={"field": field})
    return value


def check_share_expires_in(expires_in: int | None) -> int:
    if expires_in is None:
        return DEFAULT_EXPIRES_IN
    expires_in = _check_int(expires_in, "expires_in")
    if not 1 <= expires_in <= MAX_EXPIRES_IN:
        raise InvalidInput(
            f"expires_in must be between 1 and {MAX_EXPIRES_IN} seconds (90 days); leave it out for {DEFAULT_EXPIRES_IN // 86400} days",
            details={"field": "expires_in"},
        )
    return expires_in


def check_share_max_downloads(max_downloads: int | None) -> int | None:
    if max_downloads is None:
        return None
    max_downloads = _check_int(max_downloads, "max_downloads")
    if not 1 <= max_downloads <= MAX_DOWNLOADS:
        raise InvalidInput(
            f"max_downloads must be between 1 and {MAX_DOWNLOADS}; leave it out for no limit",
            details={"field": "max_downloads"},
        )
    return max_downloads


def check_share_expires_at(expires_at: datetime, *, now: datetime) -> datetime:
    if not isinstance(expires_at, datetime):
        raise InvalidInput("expires_at must be a date and time", details={"field": "expires_at"})
    if timezone.is_naive(expires_at):
        raise InvalidInput(
            "expires_at must carry a time zone (for example 2030-01-31T12:00:00Z)", details={"field": "expires_at"}
        )
    if expires_at <= now:
        raise InvalidInput("expires_at must be in the future", details={"field": "expires_at"})
    if expires_at > now + timedelta(seconds=MAX_EXPIRES_IN):
        raise InvalidInput(
            f"expires_at must be at most {MAX_EXPIRES_IN // 86400} days from now", details={"field": "expires_at"}
        )
    return expires_at


def _check_words(value: str | None, *, field: str, limit: int) -> str:
    if value is None:
        return ""
    if not isinstance(value, str):
        raise InvalidInput(f"{field} must be a string", details={"field": field})
    value = check_text(value.strip(), field=field)
    if len(value) > limit:
        raise InvalidInput(f"{field} must be at most {limit} characters", details={"field": field})
    return value


def check_share_label(label: str | None) -> str:
    label = _check_words(label, field="label", limit=MAX_LABEL_LENGTH)
    if any(ch in label for ch in "\r\n"):
        raise InvalidInput("label must be one line", details={"field": "label"})
    return label


def check_share_note(note: str | None) -> str:
    return _check_words(note, field="note", limit=MAX_NOTE_LENGTH)


def check_share_password(password: str | None) -> str | None:
    if password is None:
        return None
    if not isinstance(password, str):
        raise InvalidInput("password must be a string", details={"field": "password"})
    if not MIN_PASSWORD_LENGTH <= len(password) <= MAX_PASSWORD_LENGTH:
        raise InvalidInput(
            f"password must be between {MIN_PASSWORD_LENGTH} and {MAX_PASSWORD_LENGTH} characters; leave it out for no password",
            details={"field": "password"},
        )
    return password


def share_link_create(
    *,
    actor: Actor,
    artifact: Artifact,
    expires_in: int | None = None,
    max_downloads: int | None = None,
    password: str | None = None,
    expires_at: datetime | None = None,
    label: str | None = None,
    note: str | None = None,
    wait: bool = True,
) -> tuple[ShareLink, str]:
    """A new link to a visible artifact and its token. It expires ``expires_in`` seconds from now
    or at ``expires_at`` (one of them, or neither for the default)."""
    now = timezone.now()
    if expires_at is not None:
        if expires_in is not None:
            raise InvalidInput("give expires_in or expires_at, not both", details={"field": "expires_at"})
        expires_at = check_share_expires_at(expires_at, now=now)
    else:
        expires_at = now + timedelta(seconds=check_share_expires_in(expires_in))
    max_downloads = check_share_max_downloads(max_downloads)
    password = check_share_password(password)
    label = check_share_label(label)
    note = check_share_note(note)
    if not artifact.is_visible:
        raise NotFound(f"Artifact '{artifact.id}' not found", code="ARTIFACT_NOT_FOUND")
    token = secrets.token_urlsafe(TOKEN_BYTES)
    link = ShareLink(
        organization_id=artifact.organization_id,
        artifact=artifact,
        token_hash=hash_share_token(token),
        token_encrypted=sealed.encrypt(token),
        label=label,
        note=note,
        state=ShareLinkState.PENDING,
        expires_at=expires_at,
        max_downloads=max_downloads,
        password_hash=make_password(password) if password else "",
        created_at=now,
        created_by_api_key_id=actor.api_key_id,
        created_by_user_id=actor.user_id,
    )
    with transaction.atomic():
        link.save(force_insert=True)
        transaction.on_commit(lambda: _enqueue_activation(link, actor))
    if wait:
        _wait_for_activation(link.id, timeout=ACTIVATE_WAIT_SECONDS)
        link.refresh_from_db()
        if link.state == ShareLinkState.REVOKED:
            raise NotFound(f"Artifact '{artifact.id}' not found", code="ARTIFACT_NOT_FOUND")
    return link, token


def _wait_for_activation(link_id: str, *, timeout: float) -> None:
    """Until the worker has decided the link (active, or revoked for a gone artifact), read from
    its row: the answer does not depend on the result store, and a busy queue only delays it."""
    deadline = time.monotonic() + timeout
    delay = 0.02
    while ShareLink.objects.filter(id=link_id, state=ShareLinkState.PENDING).exists():
        if time.monotonic() >= deadline:
            return
        time.sleep(delay)
        delay = min(delay * 2, 0.25)


def share_link_token(link: ShareLink) -> str | None:
    """The link's token, for members who may manage it; None for a link made before tokens were
    kept, or kept under another secrets key."""
    if not link.token_encrypted:
        return None
    token = sealed.decrypt(link.token_encrypted)
    # A ciphertext swapped in from another row must not hand out that row's link.
    if token is None or hash_share_token(token) != link.token_hash:
        return None
    return token


def _enqueue_activation(link: ShareLink, actor: Actor) -> None:
    try:
        enqueue(activate_share_link, task_id=link.id, share_id=link.id, actor=actor.to_dict())
    except StowageError:
        # Nobody will ever activate it: retire the row so it is not left pending forever.
        ShareLink.objects.filter(id=link.id, state=ShareLinkState.PENDING).update(
            state=ShareLinkState.REVOKED, revoked_at=timezone.now()
        )
        raise


def share_link_revoke(*, actor: Actor, link: ShareLink) -> ShareLink:
    """Idempotent: revoking a revoked link changes nothing and records nothing."""
    with transaction.atomic():
        revoked = (
            ShareLink.objects.filter(id=link.id)
            .exclude(state=ShareLinkState.REVOKED)
            .update(state=ShareLinkState.REVOKED, revoked_at=timezone.now())
        )
        if revoked:
            audit_record(
                actor=actor,
                action="share.revoke",
                resource=f"artifact:{link.artifact_id}",
                details={"share_id": link.id, "download_count": link.download_count},
                organization_id=link.organization_id,
            )
            share_emit(link, "share.revoked", reason="requested")
    link.refresh_from_db()
    return link


def share_link_resolve(*, token: str) -> ShareLink | None:
    """The link this token opens, if it can be downloaded now; None in every other case."""
    link = share_link_find(token=token)
    if link is None or share_link_effective_state(link) != ShareLinkState.ACTIVE:
        return None
    return link


def share_link_find(*, token: str) -> ShareLink | None:
    """The active link this token names, with its artifact, organization and creator, even if it
    has expired or been used up since: for a recipient who holds a grant of a counted download."""
    if not token or len(token) > MAX_TOKEN_LENGTH:
        return None
    link = (
        ShareLink.objects.select_related("artifact", "organization", "created_by_user", "created_by_api_key")
        .filter(token_hash=hash_share_token(token), state=ShareLinkState.ACTIVE)
        .first()
    )
    if link is None or not link.artifact.is_visible:
        return None
    return link


@dataclass(frozen=True)
class Recipient:
    ip: str | None
    user_agent: str = ""
    request_id: str = ""


def share_link_download(*, link: ShareLink, password: str | None, recipient: Recipient) -> Artifact:
    """Check the password, count the download and audit it; the artifact to send. Raises WrongPassword
    (nothing counted) or ShareUnavailable (revoked, expired or used up since it was resolved)."""
    if link.has_password and not (
        password and len(password) <= MAX_PASSWORD_LENGTH and check_password(password, link.password_hash)
    ):
        audit_refusal(
            actor=Actor(
                organization_id=link.organization_id,
                label=f"share link {link.id}",
                ip=recipient.ip,
                user_agent=recipient.user_agent[:400],
                request_id=recipient.request_id,
            ),
            action="share.wrong_password",
            reason="wrong share-link password",
            organization_id=link.organization_id,
            resource=f"artifact:{link.artifact_id}",
            details={"share_id": link.id},
        )
        raise WrongPassword("the password is not right")
    artifact = link.artifact
    now = timezone.now()
    with transaction.atomic():
        # One conditional UPDATE on the row's own columns: concurrent downloads each re-check
        # the count against the committed value, so no more than max_downloads ever succeed.
        counted = (
            ShareLink.objects.filter(id=link.id, state=ShareLinkState.ACTIVE)
            .filter(Q(expires_at__isnull=True) | Q(expires_at__gt=now))
            .filter(Q(max_downloads__isnull=True) | Q(download_count__lt=F("max_downloads")))
            .update(download_count=F("download_count") + 1, last_download_at=now)
        )
        if not counted:
            raise ShareUnavailable("this link no longer works")
        link.refresh_from_db(fields=["download_count", "last_download_at"])
        actor = Actor(
            organization_id=artifact.organization_id,
            label=f"share link {link.id}",
            ip=recipient.ip,
            user_agent=recipient.user_agent[:400],
            request_id=recipient.request_id,
        )
        artifact_record_read(
            actor=actor,
            artifact=artifact,
            action="share.download",
            details={"share_id": link.id, "download_count": link.download_count, "max_downloads": link.max_downloads},
        )
        share_emit(link, "share.downloaded")
    return artifact


def _guess_key(ip: str | None) -> str:
    return f"share-guesses:{ip or 'unknown'}"


def share_guesses_exceeded(*, ip: str | None) -> bool:
    return (cache.get(_guess_key(ip)) or 0) >= settings.SHARE_GUESS_LIMIT_PER_MINUTE


def share_guess_record(*, ip: str | None) -> None:
    """Count a failed lookup or wrong password; the window starts at the first and lasts a minute."""
    key = _guess_key(ip)
    if cache.add(key, 1, timeout=GUESS_WINDOW_SECONDS):
        return
    try:
        cache.incr(key)
    except ValueError:
        # The window ended between add and incr.
        cache.add(key, 1, timeout=GUESS_WINDOW_SECONDS)
