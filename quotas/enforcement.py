"""Quota checks: before bytes move where their size is known, and at publish, where the counter
row's lock orders concurrent uploads so that none overshoots a quota."""

from __future__ import annotations

from core.errors import QuotaExceeded
from quotas.counters import usage_add, usage_locked, usage_read
from quotas.limits import SIZE_QUOTAS, Limits
from quotas.selectors import quota_limits
from sandboxes.models import Sandbox, SandboxStatus

_WHAT_TO_DO = {
    "bytes": "delete artifacts or empty the trash to free stored bytes, or ask the instance's staff to raise the quota",
    "artifacts": "delete artifacts or empty the trash, or ask the instance's staff to raise the quota",
    "largest": "split it into smaller artifacts, or ask the instance's staff to raise the quota",
    "sandboxes": "stop a running sandbox first, or ask the instance's staff to raise the quota",
}
_NAME = {
    "bytes": "stored bytes",
    "artifacts": "artifacts",
    "largest": "largest artifact",
    "sandboxes": "running sandboxes",
}


def _amount(quota: str, count: int) -> str:
    if quota not in SIZE_QUOTAS:
        return str(count)
    for unit, multiplier in (("TiB", 1 << 40), ("GiB", 1 << 30), ("MiB", 1 << 20), ("KiB", 1 << 10)):
        if count >= multiplier:
            return f"{count / multiplier:.1f} {unit} ({count} bytes)"
    return f"{count} bytes"


def quota_exceeded(quota: str, *, used: int, limit: int, requested: int) -> QuotaExceeded:
    if quota == "largest":
        said = (
            f"an artifact of {_amount(quota, requested)} is over the organization's largest artifact quota of "
            f"{_amount(quota, limit)}"
        )
    else:
        said = (
            f"the organization's {_NAME[quota]} quota of {_amount(quota, limit)} would be exceeded "
            f"({_amount(quota, used)} used, {_amount(quota, requested)} more asked for)"
        )
    return QuotaExceeded(
        f"{said}; {_WHAT_TO_DO[quota]}.", details={"quota": quota, "used": used, "limit": limit, "requested": requested}
    )


def _check_size(limits: Limits, size: int) -> None:
    if limits.largest is not None and size > limits.largest:
        raise quota_exceeded("largest", used=0, limit=limits.largest, requested=size)


def quota_check_upload(*, organization_id: str, size: int | None) -> None:
    """Before any byte moves: refuse an artifact of ``size`` bytes (None: not known yet) that no
    quota leaves room for. Not a promise: the check at publish is the one that holds."""
    limits = quota_limits(organization_id=organization_id)
    if limits == Limits(None, None, None, limits.sandboxes):
        return
    usage = usage_read(organization_id=organization_id)
    if limits.artifacts is not None and usage.artifact_count + 1 > limits.artifacts:
        raise quota_exceeded("artifacts", used=usage.artifact_count, limit=limits.artifacts, requested=1)
    if size is None:
        return
    _check_size(limits, size)
    if limits.bytes is not None and usage.stored_bytes + size > limits.bytes:
        raise quota_exceeded("bytes", used=usage.stored_bytes, limit=limits.bytes, requested=size)


def quota_claim_publish(*, organization_id: str, size: int, added_bytes: int) -> None:
    """In the transaction that makes an artifact ready, after its blobs are adopted (``added_bytes``
    of them new, already counted): count the artifact and check every quota under the counter row's
    lock. QuotaExceeded rolls the whole publish back."""
    usage_add(organization_id=organization_id, artifacts=1)
    limits = quota_limits(organization_id=organization_id)
    if limits.bytes is None and limits.artifacts is None and limits.largest is None:
        return
    usage = usage_locked(organization_id=organization_id)
    _check_size(limits, size)
    if limits.artifacts is not None and usage.artifact_count > limits.artifacts:
        raise quota_exceeded("artifacts", used=usage.artifact_count - 1, limit=limits.artifacts, requested=1)
    if added_bytes and limits.bytes is not None and usage.stored_bytes > limits.bytes:
        raise quota_exceeded("bytes", used=usage.stored_bytes - added_bytes, limit=limits.bytes, requested=added_bytes)


def quota_check_sandbox(*, organization_id: str) -> None:
    """In the transaction that saves a new sandbox: refuse one past the running sandboxes quota.
    The counter row's lock makes concurrent creates count one another."""
    limit = quota_limits(organization_id=organization_id).sandboxes
    if limit is None:
        return
    usage_locked(organization_id=organization_id)
    running = Sandbox.objects.filter(
        organization_id=organization_id, status__in=[SandboxStatus.CREATING, SandboxStatus.RUNNING]
    ).count()
    if running >= limit:
        raise quota_exceeded("sandboxes", used=running, limit=limit, requested=1)
