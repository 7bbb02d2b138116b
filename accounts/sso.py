"""The account behind a single sign-on: found by issuer and subject, made on the first sign-in,
its memberships set from the provider's roles claim."""

from __future__ import annotations

import logging
import re
from typing import Any

from django.contrib.auth import get_user_model
from django.db import transaction
from django.utils import timezone

from accounts.models import Role, SingleSignOnIdentity
from audit.services import audit_record
from core.actor import Actor
from members.services import membership_sync_from_sso

logger = logging.getLogger(__name__)

_USERNAME_UNSAFE = re.compile(r"[^\w.@+-]")


class SignInRefused(Exception):
    """A verified sign-in that is still refused, for a reason about the account itself."""

    def __init__(self, message: str, *, username: str = "") -> None:
        super().__init__(message)
        self.username = username


def claimed_roles(value: Any) -> dict[str, Role] | None:
    """The claim as {organization id: role}. It may be a mapping, or a list of "org_id:role"
    strings (what a provider's groups usually look like). None when the claim is absent."""
    if value is None:
        return None
    pairs: list[tuple[Any, Any]] = []
    if isinstance(value, dict):
        pairs = list(value.items())
    elif isinstance(value, list | tuple):
        pairs = [tuple(str(item).rsplit(":", 1)) for item in value if ":" in str(item)]
    roles: dict[str, Role] = {}
    for organization_id, role in pairs:
        if str(role) in Role.values:
            roles[str(organization_id)] = Role(str(role))
        else:
            logger.warning("single sign-on claim names an unknown role %r for %r", role, organization_id)
    return roles


def _free_username(claims: dict[str, Any]) -> str:
    User = get_user_model()
    wanted = claims.get("preferred_username") or (claims.get("email") or "").split("@")[0] or claims["sub"]
    base = _USERNAME_UNSAFE.sub("-", str(wanted))[:140] or "sso-user"
    candidate, number = base, 1
    while User.objects.filter(username=candidate).exists():
        number += 1
        candidate = f"{base}-{number}"
    return candidate


def sso_user_sign_in(*, claims: dict[str, Any], roles_claim: str, actor: Actor):
    """The user these verified claims are, made on first sight; memberships follow the claim."""
    User = get_user_model()
    issuer, subject = str(claims["iss"]), str(claims["sub"])
    email = str(claims.get("email") or "")[:254]
    with transaction.atomic():
        identity = (
            SingleSignOnIdentity.objects.select_for_update()
            .select_related("user")
            .filter(issuer=issuer, subject=subject)
            .first()
        )
        if identity is None:
            user = User.objects.create_user(username=_free_username(claims), email=email)
            user.set_unusable_password()
            user.save(update_fields=["password"])
            identity = SingleSignOnIdentity.objects.create(user=user, issuer=issuer, subject=subject)
            audit_record(
                actor=actor,
                action="user.create",
                resource=f"user:{user.pk}",
                details={"username": user.get_username(), "via": "single sign-on", "issuer": issuer},
                organization_id=None,
            )
        user = identity.user
        if not user.is_active:
            # Before the claim is applied: a deactivated account's memberships stay as they are.
            raise SignInRefused("this account is deactivated", username=user.get_username())
        SingleSignOnIdentity.objects.filter(pk=identity.pk).update(last_sign_in_at=timezone.now())
        if email and user.email != email:
            User.objects.filter(pk=user.pk).update(email=email)
    roles = claimed_roles(claims.get(roles_claim))
    if roles is not None:
        acting = Actor(**{**actor.to_dict(), "user_id": user.pk, "scopes": frozenset()})
        membership_sync_from_sso(user=user, claimed=roles, actor=acting)
    return user
