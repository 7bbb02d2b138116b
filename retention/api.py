"""/api/v1/retention-policies: an organization's retention policies, and what one would remove
now (for a saved policy, or for one before it is saved). Keys need the ``artifacts:admin`` scope, as the trash and legal holds do."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from django.http import HttpRequest
from django.utils import timezone
from ninja import Router, Schema, Status
from pydantic import StrictBool, StrictStr

from config.auth import require_scope
from config.schemas import BODY, errors, strict_int
from retention import services
from retention.models import RetentionPolicy
from retention.selectors import Preview, policy_get, policy_list, policy_preview

router = Router(tags=["retention"])

SCOPE = "artifacts:admin"
Value = strict_int(1, 36_500)


class PolicyIn(Schema):
    name: StrictStr
    prefix: StrictStr | None = None
    kind: StrictStr
    value: Value
    enabled: StrictBool = True


class PolicyPatch(Schema):
    name: StrictStr | None = None
    prefix: StrictStr | None = None
    kind: StrictStr | None = None
    value: Value | None = None
    enabled: StrictBool | None = None


class PreviewIn(Schema):
    prefix: StrictStr | None = None
    kind: StrictStr
    value: Value


class PolicyOut(Schema):
    id: str
    name: str
    prefix: str
    kind: str
    value: int
    enabled: bool
    rule: str
    created_at: datetime
    updated_at: datetime
    last_run_at: datetime | None
    last_removed_count: int


class PolicyListOut(Schema):
    retention_policies: list[PolicyOut]


class SampleOut(Schema):
    id: str
    remote_path: str
    version: int | None
    size: int
    created_at: datetime
    last_downloaded_at: datetime | None


class PreviewOut(Schema):
    rule: str
    count: int
    bytes: int
    sample: list[SampleOut]


class DeletedOut(Schema):
    success: bool


def policy_out(policy: RetentionPolicy) -> dict[str, Any]:
    return {
        "id": policy.id,
        "name": policy.name,
        "prefix": policy.prefix,
        "kind": policy.kind,
        "value": policy.value,
        "enabled": policy.enabled,
        "rule": policy.rule,
        "created_at": policy.created_at,
        "updated_at": policy.updated_at,
        "last_run_at": policy.last_run_at,
        "last_removed_count": policy.last_removed_count,
    }


def preview_out(policy: RetentionPolicy, preview: Preview) -> dict[str, Any]:
    return {
        "rule": policy.rule,
        "count": preview.count,
        "bytes": preview.bytes,
        "sample": [
            {
                "id": a.id,
                "remote_path": a.remote_path,
                "version": a.version,
                "size": a.size,
                "created_at": a.created_at,
                "last_downloaded_at": a.last_downloaded_at,
            }
            for a in preview.sample
        ],
    }


def _policy(request: HttpRequest, policy_id: str) -> RetentionPolicy:
    require_scope(request.auth, SCOPE)
    return policy_get(organization_id=request.auth.organization_id, policy_id=policy_id)


@router.get("/retention-policies", response={200: PolicyListOut, **errors()})
def list_policies(request: HttpRequest):
    require_scope(request.auth, SCOPE)
    policies = policy_list(organization_id=request.auth.organization_id)
    return {"retention_policies": [policy_out(p) for p in policies]}


@router.post("/retention-policies", response={201: PolicyOut, **errors(BODY, 409)})
def create_policy(request: HttpRequest, payload: PolicyIn):
    require_scope(request.auth, SCOPE)
    policy = services.policy_create(
        actor=request.auth, organization_id=request.auth.organization_id, **payload.model_dump()
    )
    return Status(201, policy_out(policy))


@router.post("/retention-policies/preview", response={200: PreviewOut, **errors(BODY)})
def preview_unsaved(request: HttpRequest, payload: PreviewIn):
    """What a policy with these settings would remove now: count, bytes and the oldest 20."""
    require_scope(request.auth, SCOPE)
    policy = services.policy_build(organization_id=request.auth.organization_id, **payload.model_dump())
    return preview_out(policy, policy_preview(policy, now=timezone.now()))


@router.get("/retention-policies/{policy_id}", response={200: PolicyOut, **errors(404)})
def get_policy(request: HttpRequest, policy_id: str):
    return policy_out(_policy(request, policy_id))


@router.patch("/retention-policies/{policy_id}", response={200: PolicyOut, **errors(404, 409, BODY)})
def update_policy(request: HttpRequest, policy_id: str, payload: PolicyPatch):
    policy = _policy(request, policy_id)
    changes = {name: value for name, value in payload.model_dump(exclude_unset=True).items() if value is not None}
    return policy_out(services.policy_update(actor=request.auth, policy=policy, **changes))


@router.delete("/retention-policies/{policy_id}", response={200: DeletedOut, **errors(404)})
def delete_policy(request: HttpRequest, policy_id: str):
    services.policy_delete(actor=request.auth, policy=_policy(request, policy_id))
    return {"success": True}


@router.post("/retention-policies/{policy_id}/preview", response={200: PreviewOut, **errors(404)})
def preview_saved(request: HttpRequest, policy_id: str):
    """What this policy would remove if it ran now."""
    policy = _policy(request, policy_id)
    return preview_out(policy, policy_preview(policy, now=timezone.now()))
