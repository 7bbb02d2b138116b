from __future__ import annotations

import hashlib
import logging
import secrets
from datetime import timedelta

from django.conf import settings
from django.contrib.auth import get_user_model
from django.db import OperationalError, transaction
from django.utils import timezone

from accounts.models import ApiKey, Membership, Organization, Role
from accounts.selectors import api_key_lineage
from audit.refusals import audit_refusal
from audit.services import audit_record
from core.actor import Actor
from core.errors import Forbidden, InvalidInput, NotFound
from core.text import check_text

logger = logging.getLogger(__name__)

KEY_PREFIX = "stow_"
# A key never contains a dot, so the SDK never mistakes it for a JWT.
KNOWN_SCOPES = frozenset(settings.API_KEY_SCOPES)
# What a key asked for without scopes gets: it can look, not change anything.
READ_SCOPES = ("sandboxes:read", "artifacts:read")
LAST_USED_RESOLUTION = timedelta(minutes=1)
MAX_KEY_DAYS = 3650


def hash_api_key(secret: str) -> str:
    return hashlib.sha256(secret.encode()).hexdigest()


def api_key_create(
    *,
    organization: Organization,
    name: str,
    actor: Actor,
    scopes: list[str] | None = None,
    expires_in_days: int | None = None,
    created_by_id: int | None = None,
) -> tuple[ApiKey, str]:
    name = check_text((name or "").strip(), field="name")
    if not name or len(name) > 200:
        raise InvalidInput("name is required and must be at most 200 characters", details={"field": "name"})
    scopes = list(dict.fromkeys(scopes)) if scopes else list(READ_SCOPES)
    unknown = sorted(set(scopes) - KNOWN_SCOPES)
    if unknown:
        raise InvalidInput(
            f"unknown scopes: {', '.join(unknown)}; known scopes are {', '.join(sorted(KNOWN_SCOPES))}",
            details={"field": "scopes"},
        )
    beyond = sorted(set(scopes) - actor.scopes) if actor.api_key_id else []
    if beyond:
        # A key may hand on what it holds, never more: otherwise keys:manage alone is every scope.
        audit_refusal(
            actor=actor,
            action="apikey.create",
            reason=f"the API key lacks the scopes it asked to grant: {', '.join(beyond)}",
            organization_id=organization.id,
            details={"name": name, "scopes": scopes, "missing": beyond},
        )
        raise Forbidden(
            f"an API key can only grant scopes it has itself; this one lacks {', '.join(beyond)}",
            code="INSUFFICIENT_SCOPE",
            details={"field": "scopes", "missing": beyond},
        )
    if expires_in_days is not None and not 1 <= expires_in_days <= MAX_KEY_DAYS:
        raise InvalidInput(
            f"expires_in_days must be between 1 and {MAX_KEY_DAYS}", details={"field": "expires_in_days"}
        )
    expires_at = timezone.now() + timedelta(days=expires_in_days) if expires_in_days else None
    parent = ApiKey.objects.filter(organization=organization, id=actor.api_key_id).first() if actor.api_key_id else None
    if parent is not None:
        # A key belongs to whoever made the key that made it, so removing that member ends it too.
        created_by_id = parent.created_by_id
        if parent.expires_at is not None:
            # Never outliving its parent, or a key about to expire could mint its successor forever.
            expires_at = min(expires_at or parent.expires_at, parent.expires_at)
    secret = KEY_PREFIX + secrets.token_urlsafe(32)
    key = ApiKey.objects.create(
        organization=organization,
        name=name,
        prefix=secret[: len(KEY_PREFIX) + 8],
        key_hash=hash_api_key(secret),
        scopes=scopes,
        created_by_id=created_by_id,
        parent_key=parent,
        expires_at=expires_at,
    )
    audit_record(
        actor=actor,
        action="apikey.create",
        resource=f"apikey:{key.id}",
        details={"name": name, "prefix": key.prefix, "scopes": scopes},
        organization_id=organization.id,
    )
    return key, secret


def api_key_find(secret: str) -> ApiKey | None:
    """The key with this secret, in whatever state: the caller tells a revoked key from no key."""
    if not secret or len(secret) > 200:
        return None
    return ApiKey.objects.select_related("organization").filter(key_hash=hash_api_key(secret)).first()


def api_key_authenticate(secret: str) -> ApiKey | None:
    key = api_key_find(secret)
    if key is None or not key.is_active:
        return None
    now = timezone.now()
    if key.last_used_at is None or now - key.last_used_at > LAST_USED_RESOLUTION:
        # In a transaction of its own, so that SQLite takes its write lock up front and waits for
        # a long writer instead of failing; a database that still refuses only delays the stamp,
        # it never fails the request it rides on.
        try:
            with transaction.atomic():
                ApiKey.objects.filter(pk=key.pk).update(last_used_at=now)
            key.last_used_at = now
        except OperationalError:
            logger.warning("could not record the use of API key %s; the database is busy", key.prefix)
    return key


def api_key_revoke(*, organization: Organization, key_id: str, actor: Actor) -> ApiKey:
    """Revoke a key and every key made with it (and with those); each one revoked now is audited."""
    key = ApiKey.objects.filter(organization=organization, id=key_id).first()
    if key is None:
        raise NotFound(f"API key '{key_id}' not found", code="API_KEY_NOT_FOUND")
    lineage = api_key_lineage(organization_id=organization.id, key_ids=[key.id])
    with transaction.atomic():
        for revoked_key in api_keys_revoke(organization_id=organization.id, key_ids=lineage):
            details = {"prefix": revoked_key.prefix}
            if revoked_key.id != key.id:
                details["reason"] = f"made with {key.prefix}…, which was revoked"
            audit_record(
                actor=actor,
                action="apikey.revoke",
                resource=f"apikey:{revoked_key.id}",
                details=details,
                organization_id=organization.id,
            )
    key.refresh_from_db()
    return key


def api_keys_revoke(*, organization_id: str, key_ids: list[str]) -> list[ApiKey]:
    """Revoke those of these keys that still work (a compare-and-set each); the ones this call revoked."""
    now = timezone.now()
    candidates = ApiKey.objects.filter(organization_id=organization_id, id__in=key_ids, revoked_at__isnull=True)
    revoked = []
    for candidate in candidates:
        if ApiKey.objects.filter(pk=candidate.pk, revoked_at__isnull=True).update(revoked_at=now):
            revoked.append(candidate)
    order = {key_id: index for index, key_id in enumerate(key_ids)}
    return sorted(revoked, key=lambda revoked_key: order[revoked_key.id])


def organization_bootstrap(
    *, org_name: str, email: str, username: str | None = None
) -> tuple[Organization, object, str, ApiKey, str]:
    """Create an organization, its owner (with a random password) and a first API key.

    The owner of the instance's first organization is its first administrator (staff and
    superuser); every later owner owns only their organization."""
    User = get_user_model()
    username = username or email.split("@")[0] or "admin"
    password = secrets.token_urlsafe(12)
    with transaction.atomic():
        first_administrator = not User.objects.filter(is_superuser=True).exists()
        org = Organization.objects.create(name=org_name)
        user = User.objects.filter(username=username).first()
        if user is None:
            user = User.objects.create_user(
                username=username,
                email=email,
                password=password,
                is_staff=first_administrator,
                is_superuser=first_administrator,
            )
        else:
            user.set_password(password)
            user.save(update_fields=["password"])
        Membership.objects.create(user=user, organization=org, role=Role.OWNER)
        actor = Actor(organization_id=org.id, user_id=user.pk, label=user.get_username())
        key, secret = api_key_create(
            organization=org, name="bootstrap", actor=actor, scopes=list(KNOWN_SCOPES), created_by_id=user.pk
        )
    return org, user, password, key, secret


def staff_set(*, username: str, staff: bool, actor: Actor):
    """Give or take the instance's staff rights (``/admin/``, every organization); audited in the
    instance log, since they belong to no organization."""
    user = get_user_model().objects.filter(username=username).first()
    if user is None:
        raise NotFound(f"there is no account '{username}'", code="USER_NOT_FOUND")
    if not staff and user.is_superuser:
        others = get_user_model().objects.filter(is_superuser=True, is_active=True).exclude(pk=user.pk)
        if not others.exists():
            raise InvalidInput("the instance needs one superuser: promote someone else first", code="LAST_SUPERUSER")
    get_user_model().objects.filter(pk=user.pk).update(is_staff=staff, is_superuser=staff)
    audit_record(
        actor=actor,
        action="staff.promote" if staff else "staff.demote",
        resource=f"user:{user.pk}",
        details={"username": user.get_username()},
        organization_id=None,
    )
    user.refresh_from_db()
    return user
