"""Every change a request makes to retention policies: create, update, delete. Each checks the
whole policy first and changes nothing on bad input; each is audited."""

from __future__ import annotations

import unicodedata
from typing import Any

from django.db import IntegrityError, transaction
from django.utils import timezone

from audit.services import audit_record
from core.actor import Actor
from core.errors import Conflict, InvalidInput
from core.text import has_lone_surrogate
from retention.models import VALUE_BOUNDS, VALUE_UNITS, PolicyKind, RetentionPolicy

MAX_NAME = 100
MAX_PREFIX_BYTES = 1024
MAX_POLICIES_PER_ORGANIZATION = 50
UNSAVED_NAME = "unsaved policy"


def _not_text(text: str) -> bool:
    return any(unicodedata.category(ch) == "Cc" for ch in text) or has_lone_surrogate(text)


def check_name(name: Any) -> str:
    if not isinstance(name, str) or not name.strip() or len(name.strip()) > MAX_NAME or _not_text(name):
        raise InvalidInput(
            f"name must be 1 to {MAX_NAME} characters of text without control characters", details={"field": "name"}
        )
    return name.strip()


def check_prefix(prefix: Any) -> str:
    """A remote_path prefix as remote_path itself is checked (artifacts/validation.py): text, at most
    1024 bytes, no empty, '.' or '..' segment; a leading '/' is dropped, a trailing one kept (so
    ``reports/`` means that folder, ``reports`` also ``reports-2024/``). Empty: the whole organization."""
    if prefix is None:
        return ""
    if not isinstance(prefix, str):
        raise InvalidInput("prefix must be a string", code="INVALID_PREFIX", details={"field": "prefix"})
    if _not_text(prefix):
        raise InvalidInput(
            "prefix must be text without control characters", code="INVALID_PREFIX", details={"field": "prefix"}
        )
    if len(prefix.encode()) > MAX_PREFIX_BYTES:
        raise InvalidInput(
            f"prefix is longer than {MAX_PREFIX_BYTES} bytes", code="INVALID_PREFIX", details={"field": "prefix"}
        )
    clean = prefix.lstrip("/")
    if clean.strip() == "":
        return ""
    segments = clean.removesuffix("/").split("/")
    if any(segment in ("", ".", "..") for segment in segments):
        raise InvalidInput(
            "prefix must not contain empty, '.' or '..' segments", code="INVALID_PREFIX", details={"field": "prefix"}
        )
    return clean


def check_kind(kind: Any) -> PolicyKind:
    if kind not in PolicyKind.values:
        raise InvalidInput(
            f"kind must be one of {', '.join(PolicyKind.values)}",
            code="INVALID_RETENTION_KIND",
            details={"field": "kind", "kinds": list(PolicyKind.values)},
        )
    return PolicyKind(kind)


def check_value(kind: PolicyKind, value: Any) -> int:
    low, high = VALUE_BOUNDS[kind]
    if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= high:
        raise InvalidInput(
            f"value of a {kind.value} policy must be a whole number of {VALUE_UNITS[kind]} from {low} to {high}",
            code="INVALID_RETENTION_VALUE",
            details={"field": "value", "min": low, "max": high},
        )
    return value


def _check_enabled(enabled: Any) -> bool:
    if not isinstance(enabled, bool):
        raise InvalidInput("enabled must be true or false", details={"field": "enabled"})
    return enabled


def policy_build(
    *, organization_id: str, name: Any = None, prefix: Any = None, kind: Any, value: Any, enabled: Any = True
) -> RetentionPolicy:
    """A checked policy, not saved: what a preview of an unsaved policy selects with."""
    clean_kind = check_kind(kind)
    return RetentionPolicy(
        organization_id=organization_id,
        name=UNSAVED_NAME if name is None or name == "" else check_name(name),
        prefix=check_prefix(prefix),
        kind=clean_kind,
        value=check_value(clean_kind, value),
        enabled=_check_enabled(enabled),
    )


def _details(policy: RetentionPolicy) -> dict[str, Any]:
    return {
        "name": policy.name,
        "prefix": policy.prefix,
        "kind": policy.kind,
        "value": policy.value,
        "enabled": policy.enabled,
    }


def _audit(actor: Actor, action: str, policy: RetentionPolicy, **details: Any) -> None:
    audit_record(
        actor=actor,
        action=action,
        resource=f"retention_policy:{policy.id}",
        details={**_details(policy), **details},
        organization_id=policy.organization_id,
    )


def _name_taken(policy: RetentionPolicy) -> Conflict:
    return Conflict(
        f"a retention policy named {policy.name!r} already exists",
        code="RETENTION_POLICY_EXISTS",
        details={"field": "name"},
    )


def policy_create(
    *, actor: Actor, organization_id: str, name: Any, prefix: Any = None, kind: Any, value: Any, enabled: Any = True
) -> RetentionPolicy:
    check_name(name)
    policy = policy_build(
        organization_id=organization_id, name=name, prefix=prefix, kind=kind, value=value, enabled=enabled
    )
    policy.created_by_user_id = actor.user_id
    policy.created_by_api_key_id = actor.api_key_id
    policy.created_by_label = actor.label[:200]
    with transaction.atomic():
        if RetentionPolicy.objects.filter(organization_id=organization_id).count() >= MAX_POLICIES_PER_ORGANIZATION:
            raise Conflict(
                f"an organization may have at most {MAX_POLICIES_PER_ORGANIZATION} retention policies",
                code="RETENTION_POLICY_LIMIT",
            )
        if RetentionPolicy.objects.filter(organization_id=organization_id, name=policy.name).exists():
            raise _name_taken(policy)
        try:
            with transaction.atomic():
                policy.save(force_insert=True)
        except IntegrityError:
            raise _name_taken(policy) from None
        _audit(actor, "retention_policy.create", policy)
    return policy


def policy_update(*, actor: Actor, policy: RetentionPolicy, **changes: Any) -> RetentionPolicy:
    """Change any of name, prefix, kind, value and enabled; the result is checked as a whole."""
    unknown = sorted(set(changes) - {"name", "prefix", "kind", "value", "enabled"})
    if unknown:
        raise InvalidInput(f"unknown fields: {', '.join(unknown)}", details={"fields": unknown})
    merged = {**_details(policy), **changes}
    checked = policy_build(
        organization_id=policy.organization_id,
        name=check_name(merged["name"]),
        prefix=merged["prefix"],
        kind=merged["kind"],
        value=merged["value"],
        enabled=merged["enabled"],
    )
    before = _details(policy)
    with transaction.atomic():
        locked = RetentionPolicy.objects.select_for_update().get(id=policy.id)
        if (
            checked.name != locked.name
            and RetentionPolicy.objects.filter(organization_id=locked.organization_id, name=checked.name)
            .exclude(id=locked.id)
            .exists()
        ):
            raise _name_taken(checked)
        for field in ("name", "prefix", "kind", "value", "enabled"):
            setattr(locked, field, getattr(checked, field))
        locked.updated_at = timezone.now()
        locked.save(update_fields=["name", "prefix", "kind", "value", "enabled", "updated_at"])
        changed = {k: v for k, v in _details(locked).items() if before[k] != v}
        _audit(actor, "retention_policy.update", locked, changed=sorted(changed), before=before)
    return locked


def policy_delete(*, actor: Actor, policy: RetentionPolicy) -> None:
    with transaction.atomic():
        deleted, _ = RetentionPolicy.objects.filter(id=policy.id).delete()
        if deleted:
            _audit(actor, "retention_policy.delete", policy)
