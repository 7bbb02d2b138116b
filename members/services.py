"""Who belongs to an organization: invitations, roles, removal and leaving, all audited.

Two rules hold whatever the path (dashboard, single sign-on, a command): nobody grants a role
above their own, and an organization always keeps an owner. The owners' rows are locked while
one of them is demoted or removed, so two owners demoting each other at once cannot both win.
"""

from __future__ import annotations

import hashlib
import secrets
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

from django.db import IntegrityError, transaction
from django.db.models import Exists, OuterRef, Q
from django.utils import timezone

from accounts.models import ROLE_RANK, ApiKey, Membership, Organization, Role
from accounts.selectors import api_keys_made_by
from accounts.services import api_keys_revoke
from audit.refusals import audit_refusal
from audit.services import audit_record
from core.actor import Actor
from core.errors import Conflict, Forbidden, InvalidInput, NotFound, StowageError
from members.models import Invitation, InvitationState

INVITATION_DAYS = 7
MAX_INVITATION_DAYS = 30
# 32 random bytes: 256 bits, 43 URL-safe characters.
TOKEN_BYTES = 32
MAX_TOKEN_LENGTH = 128
KEY_CHOICES = ("revoke", "reassign")


class InvitationUnusable(StowageError):
    """Used, revoked or expired: the link once worked and never will again."""

    status = 410
    code = "INVITATION_UNUSABLE"


def hash_invitation_token(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def check_role(role: str) -> Role:
    if role not in Role.values:
        raise InvalidInput(
            f"there is no role '{str(role)[:40]}'; the roles are {', '.join(Role.values)}",
            code="UNKNOWN_ROLE",
            details={"field": "role"},
        )
    return Role(role)


def _may_grant(by: Membership | None, role: Role) -> None:
    if by is not None and ROLE_RANK[role] > ROLE_RANK[Role(by.role)]:
        raise Forbidden(f"you cannot grant the {role} role: it is above your own", code="ROLE_ABOVE_YOURS")


def _lock_owners(organization_id: str) -> list[int]:
    return list(
        Membership.objects.select_for_update()
        .filter(organization_id=organization_id, role=Role.OWNER)
        .values_list("pk", flat=True)
    )


def _keep_an_owner(organization_id: str, membership: Membership) -> None:
    """Inside a transaction: refuse to take the owner role from the organization's last owner."""
    if membership.role == Role.OWNER and _lock_owners(organization_id) == [membership.pk]:
        raise Conflict("an organization needs an owner: make someone else an owner first", code="LAST_OWNER")


# --- invitations -------------------------------------------------------------------------------


def invitation_create(
    *,
    organization: Organization,
    role: str,
    by: Membership | None,
    actor: Actor,
    note: str = "",
    expires_in_days: int = INVITATION_DAYS,
) -> tuple[Invitation, str]:
    """A new invitation and its token, which is shown once; ``by`` is None for staff and commands."""
    granted = check_role(role)
    _may_grant(by, granted)
    if not 1 <= expires_in_days <= MAX_INVITATION_DAYS:
        raise InvalidInput(f"an invitation lasts 1 to {MAX_INVITATION_DAYS} days", details={"field": "expires_in_days"})
    token = secrets.token_urlsafe(TOKEN_BYTES)
    invitation = Invitation.objects.create(
        organization=organization,
        role=granted,
        token_hash=hash_invitation_token(token),
        note=note.strip()[:200],
        created_by_id=by.user_id if by is not None else actor.user_id,
        issued_by_instance=by is None,
        expires_at=timezone.now() + timedelta(days=expires_in_days),
    )
    audit_record(
        actor=actor,
        action="member.invite",
        resource=f"invitation:{invitation.id}",
        details={"role": granted, "note": invitation.note, "expires_at": invitation.expires_at.isoformat()},
        organization_id=organization.id,
    )
    return invitation, token


def invitation_revoke(*, organization: Organization, invitation_id: str, actor: Actor) -> Invitation:
    invitation = Invitation.objects.filter(organization=organization, id=invitation_id).first()
    if invitation is None:
        raise NotFound(f"invitation '{invitation_id}' not found", code="INVITATION_NOT_FOUND")
    revoked = Invitation.objects.filter(pk=invitation.pk, accepted_at__isnull=True, revoked_at__isnull=True).update(
        revoked_at=timezone.now()
    )
    if revoked:
        invitation.refresh_from_db()
        audit_record(
            actor=actor,
            action="member.invite_revoke",
            resource=f"invitation:{invitation.id}",
            details={"role": invitation.role},
            organization_id=organization.id,
        )
    return invitation


def invitation_find(*, organization_id: str, token: str) -> Invitation | None:
    """The invitation behind this link, of this organization only: a token is useless elsewhere."""
    if not token or len(token) > MAX_TOKEN_LENGTH:
        return None
    return (
        Invitation.objects.select_related("organization", "created_by")
        .filter(organization_id=organization_id, token_hash=hash_invitation_token(token))
        .first()
    )


def _roles_from(role: str) -> list[Role]:
    return [granted for granted in Role if ROLE_RANK[granted] >= ROLE_RANK[Role(role)]]


def _still_backed(invitation: Invitation) -> Q:
    """A member's invitation speaks for them only while they may still grant its role; a check in
    the same UPDATE that uses the invitation up, so a removal or demotion meanwhile wins."""
    inviter = Membership.objects.filter(
        organization_id=OuterRef("organization_id"),
        user_id=OuterRef("created_by_id"),
        role__in=_roles_from(invitation.role),
    )
    return Q(issued_by_instance=True) | Q(Exists(inviter), created_by__is_active=True)


def _inviter_gone(invitation: Invitation) -> str:
    """Why the invitation no longer speaks for whoever made it; empty while it does."""
    creator = invitation.created_by
    if invitation.issued_by_instance:
        if creator is not None and not (creator.is_active and creator.is_staff):
            return f"{creator.get_username()}, who made it, is no longer the instance's staff"
        return ""
    if creator is None or not creator.is_active:
        return "the member who made it is no longer here"
    membership = Membership.objects.filter(organization_id=invitation.organization_id, user=creator).first()
    if membership is None:
        return f"{creator.get_username()}, who made it, is no longer a member"
    if ROLE_RANK[Role(membership.role)] < ROLE_RANK[Role(invitation.role)]:
        return f"{creator.get_username()}, who made it, may no longer grant the {invitation.role} role"
    return ""


def _refuse_join(actor: Actor, organization_id: str | None, reason: str, invitation: Invitation | None) -> None:
    audit_refusal(
        actor=actor,
        action="member.join",
        reason=reason,
        organization_id=organization_id,
        resource=f"invitation:{invitation.id}" if invitation else "",
    )


def invitation_usable(*, organization_id: str, token: str, actor: Actor) -> Invitation:
    """The pending invitation behind this link; a refusal (guessed, another organization's,
    used, revoked, expired) is recorded and raised."""
    organization_known = Organization.objects.filter(id=organization_id).exists()
    invitation = invitation_find(organization_id=organization_id, token=token) if organization_known else None
    if invitation is None:
        _refuse_join(actor, organization_id if organization_known else None, "no such invitation", None)
        raise NotFound("this invitation link is not valid", code="INVITATION_NOT_FOUND")
    state = invitation.state
    if state != InvitationState.PENDING:
        _refuse_join(actor, organization_id, f"the invitation is {state}", invitation)
        raise InvitationUnusable(f"this invitation has been {state}; ask for a new one", details={"state": state})
    gone = _inviter_gone(invitation)
    if gone:
        _refuse_join(actor, organization_id, f"the invitation no longer counts: {gone}", invitation)
        raise InvitationUnusable(f"this invitation no longer counts ({gone}); ask for a new one")
    return invitation


def invitation_accept(*, organization_id: str, token: str, user, actor: Actor) -> Membership:
    """Make ``user`` a member with the invitation's role, and use the invitation up, in one step."""
    invitation = invitation_usable(organization_id=organization_id, token=token, actor=actor)
    if Membership.objects.filter(organization_id=organization_id, user=user).exists():
        raise Conflict(f"you are already a member of {invitation.organization.name}", code="ALREADY_A_MEMBER")
    now = timezone.now()
    try:
        with transaction.atomic():
            used = (
                Invitation.objects.filter(
                    pk=invitation.pk, accepted_at__isnull=True, revoked_at__isnull=True, expires_at__gt=now
                )
                .filter(_still_backed(invitation))
                .update(accepted_at=now, accepted_by=user)
            )
            if not used:
                raise InvitationUnusable("this invitation has just been used or withdrawn; ask for a new one")
            membership = Membership.objects.create(user=user, organization_id=organization_id, role=invitation.role)
    except IntegrityError:
        raise Conflict(f"you are already a member of {invitation.organization.name}", code="ALREADY_A_MEMBER") from None
    audit_record(
        actor=actor,
        action="member.join",
        resource=f"user:{user.pk}",
        details={"username": user.get_username(), "role": invitation.role, "invitation": invitation.id},
        organization_id=organization_id,
    )
    return membership


# --- roles, removal, leaving -------------------------------------------------------------------


def membership_get(*, organization_id: str, membership_id: int | str) -> Membership:
    membership = (
        Membership.objects.select_related("user")
        .filter(organization_id=organization_id, pk=membership_id if str(membership_id).isdigit() else -1)
        .first()
    )
    if membership is None:
        raise NotFound("no such member", code="MEMBER_NOT_FOUND")
    return membership


def _outranks(by: Membership, target: Membership) -> None:
    if ROLE_RANK[Role(target.role)] > ROLE_RANK[Role(by.role)]:
        raise Forbidden(f"only an owner can change an {target.role}'s membership", code="ROLE_ABOVE_YOURS")


def membership_change_role(
    *, organization: Organization, membership_id: int | str, role: str, by: Membership, actor: Actor
) -> Membership:
    granted = check_role(role)
    target = membership_get(organization_id=organization.id, membership_id=membership_id)
    if target.pk == by.pk and ROLE_RANK[granted] > ROLE_RANK[Role(by.role)]:
        raise Forbidden("you cannot raise your own role", code="OWN_ROLE_UPWARD")
    _outranks(by, target)
    _may_grant(by, granted)
    if target.role == granted:
        return target
    previous = target.role
    with transaction.atomic():
        if granted != Role.OWNER:
            _keep_an_owner(organization.id, target)
        changed = Membership.objects.filter(pk=target.pk, role=previous).update(role=granted, managed_by_sso=False)
    if not changed:
        raise Conflict("the member's role changed meanwhile; reload and try again", code="MEMBER_CHANGED")
    target.role = granted
    audit_record(
        actor=actor,
        action="member.role_change",
        resource=f"user:{target.user_id}",
        details={"username": target.user.get_username(), "from": previous, "to": granted},
        organization_id=organization.id,
    )
    return target


@dataclass(frozen=True)
class Ended:
    """What ending a membership took with it."""

    key_ids: list[str]
    invitation_ids: list[str]


def _end_membership(*, target: Membership, keys: str, keys_to: Membership | None) -> Ended:
    """Inside a transaction: delete the membership, revoke the invitations its user made that
    still work, and revoke or hand on the keys they made, with every key made with those."""
    _keep_an_owner(target.organization_id, target)
    if not Membership.objects.filter(pk=target.pk, role=target.role).delete()[0]:
        raise Conflict("the membership changed meanwhile; reload and try again", code="MEMBER_CHANGED")
    now = timezone.now()
    pending = Invitation.objects.filter(
        organization_id=target.organization_id,
        created_by_id=target.user_id,
        issued_by_instance=False,
        accepted_at__isnull=True,
        revoked_at__isnull=True,
        expires_at__gt=now,
    )
    invitation_ids = sorted(pending.values_list("id", flat=True))
    Invitation.objects.filter(id__in=invitation_ids, accepted_at__isnull=True).update(revoked_at=now)
    made = api_keys_made_by(organization_id=target.organization_id, user_id=target.user_id)
    key_ids = list(made.values_list("id", flat=True))
    if keys == "reassign" and keys_to is not None:
        ApiKey.objects.filter(id__in=key_ids).update(created_by_id=keys_to.user_id)
    else:
        key_ids = [key.id for key in api_keys_revoke(organization_id=target.organization_id, key_ids=key_ids)]
    return Ended(key_ids=key_ids, invitation_ids=invitation_ids)


def membership_remove(
    *, organization: Organization, membership_id: int | str, by: Membership, actor: Actor, keys: str
) -> Membership:
    """End someone's membership at once; the keys they made are revoked or become ``by``'s."""
    if keys not in KEY_CHOICES:
        raise InvalidInput("say whether their API keys are revoked or reassigned to you", details={"field": "keys"})
    target = membership_get(organization_id=organization.id, membership_id=membership_id)
    if target.pk == by.pk:
        raise InvalidInput("to leave the organization yourself, use Leave", code="REMOVE_SELF")
    _outranks(by, target)
    with transaction.atomic():
        ended = _end_membership(target=target, keys=keys, keys_to=by)
    _audit_end(actor, target, "member.remove", keys=keys, ended=ended)
    return target


def membership_leave(*, membership: Membership, actor: Actor) -> None:
    """Leave an organization; the keys one made there are revoked, since no one else chose to keep them."""
    with transaction.atomic():
        ended = _end_membership(target=membership, keys="revoke", keys_to=None)
    _audit_end(actor, membership, "member.leave", keys="revoke", ended=ended)


def _audit_end(actor: Actor, target: Membership, action: str, *, keys: str, ended: Ended) -> None:
    details: dict[str, Any] = {
        "username": target.user.get_username(),
        "role": target.role,
        "keys": keys,
        "key_ids": ended.key_ids,
        "invitation_ids": ended.invitation_ids,
    }
    audit_record(
        actor=actor,
        action=action,
        resource=f"user:{target.user_id}",
        details=details,
        organization_id=target.organization_id,
    )
    for key_id in ended.key_ids if keys == "revoke" else ():
        audit_record(
            actor=actor,
            action="apikey.revoke",
            resource=f"apikey:{key_id}",
            details={"reason": f"{action} of {details['username']}"},
            organization_id=target.organization_id,
        )
    for invitation_id in ended.invitation_ids:
        audit_record(
            actor=actor,
            action="member.invite_revoke",
            resource=f"invitation:{invitation_id}",
            details={"reason": f"{action} of {details['username']}, who made it"},
            organization_id=target.organization_id,
        )


# --- organizations -----------------------------------------------------------------------------


def organization_create(*, name: str, actor: Actor, owner=None) -> tuple[Organization, str | None]:
    """A new organization (staff only): with ``owner`` as its owner, or an owner invitation's token."""
    name = (name or "").strip()
    if not name or len(name) > 200:
        raise InvalidInput("a name is required, of at most 200 characters", details={"field": "name"})
    with transaction.atomic():
        organization = Organization.objects.create(name=name)
        if owner is not None:
            Membership.objects.create(user=owner, organization=organization, role=Role.OWNER)
    audit_record(
        actor=actor,
        action="organization.create",
        resource=f"organization:{organization.id}",
        details={"name": name, "owner": owner.get_username() if owner is not None else None},
        organization_id=organization.id,
    )
    if owner is not None:
        return organization, None
    _invitation, token = invitation_create(
        organization=organization, role=Role.OWNER, by=None, actor=actor, note="first owner"
    )
    return organization, token


# --- single sign-on ----------------------------------------------------------------------------


def membership_sync_from_sso(*, user, claimed: dict[str, Role], actor: Actor) -> None:
    """Make the memberships the provider grants match its claim: join or change role where it
    names an organization; end the memberships it once granted and names no longer. Memberships
    from invitations are the organization's own and stay; the last owner is never demoted."""
    current = {m.organization_id: m for m in Membership.objects.filter(user=user).select_related("user")}
    known = set(Organization.objects.filter(id__in=list(claimed)).values_list("id", flat=True))
    for organization_id, role in claimed.items():
        if organization_id not in known:
            continue
        membership = current.get(organization_id)
        if membership is None:
            Membership.objects.create(user=user, organization_id=organization_id, role=role, managed_by_sso=True)
            audit_record(
                actor=actor,
                action="member.join",
                resource=f"user:{user.pk}",
                details={"username": user.get_username(), "role": role, "via": "single sign-on"},
                organization_id=organization_id,
            )
        elif membership.managed_by_sso and membership.role != role:
            _sso_change(membership, role, actor)
    for organization_id, membership in current.items():
        if membership.managed_by_sso and organization_id not in claimed:
            try:
                with transaction.atomic():
                    ended = _end_membership(target=membership, keys="revoke", keys_to=None)
            except Conflict as exc:
                _sso_refused(membership, actor, exc)
                continue
            _audit_end(actor, membership, "member.remove", keys="revoke", ended=ended)


def _sso_change(membership: Membership, role: Role, actor: Actor) -> None:
    previous = membership.role
    try:
        with transaction.atomic():
            if role != Role.OWNER:
                _keep_an_owner(membership.organization_id, membership)
            Membership.objects.filter(pk=membership.pk, role=previous).update(role=role)
    except Conflict as exc:
        _sso_refused(membership, actor, exc)
        return
    audit_record(
        actor=actor,
        action="member.role_change",
        resource=f"user:{membership.user_id}",
        details={"username": membership.user.get_username(), "from": previous, "to": role, "via": "single sign-on"},
        organization_id=membership.organization_id,
    )


def _sso_refused(membership: Membership, actor: Actor, exc: StowageError) -> None:
    audit_refusal(
        actor=actor,
        action="member.role_change",
        reason=f"single sign-on's claim was not applied: {exc.message}",
        organization_id=membership.organization_id,
        resource=f"user:{membership.user_id}",
    )
