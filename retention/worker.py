"""The periodic run of every enabled retention policy (``retention.run_policies``, from beat).

A run reads what its policy selects ``BATCH`` ids at a time (no lock taken) and removes them in
smaller batches, each its own short transaction, sized so that each lasts about
``STOWAGE_RETENTION_BATCH_MS`` (the size follows the time the last one took), so no lock is held
for long and listings and uploads go on meanwhile. In each, the rows are locked, those that gained
an alias or a legal hold since they were selected are left out, and the rest go to the trash
through ``artifacts.trash.artifacts_trash``, one audited ``artifact.delete`` event each that
names the policy. A redelivered or overlapping run finds removed rows no longer ready and skips them.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass
from datetime import datetime

from celery import shared_task
from django.conf import settings
from django.db import transaction
from django.db.models import Exists, OuterRef
from django.utils import timezone

from artifacts.models import Artifact, ArtifactAlias, ArtifactState
from artifacts.trash import artifacts_trash
from audit.services import audit_record
from core.actor import Actor
from retention.models import RetentionPolicy
from retention.selectors import removable_batches

logger = logging.getLogger(__name__)

BATCH = 500
# Bounds of one removal transaction's size, and where a run starts.
MIN_CHUNK, FIRST_CHUNK = 25, 100


@dataclass
class RunResult:
    removed: int = 0
    batches: int = 0
    # The longest a batch's transaction (and so any lock it took) lasted, in seconds.
    longest_batch_s: float = 0.0


def policy_actor(policy: RetentionPolicy) -> Actor:
    return Actor(organization_id=policy.organization_id, label=f"retention policy {policy.name}"[:200])


def _remove_batch(policy: RetentionPolicy, actor: Actor, ids: list[str]) -> int:
    with transaction.atomic():
        # Locked first, in id order as artifacts_trash locks them: an alias or a hold set after
        # the selection either committed before (and is seen below) or waits for this batch.
        # Looked up by id alone (see artifacts.trash), then sorted out here.
        rows = (
            Artifact.objects.select_for_update()
            .filter(id__in=ids)
            .annotate(aliased=Exists(ArtifactAlias.objects.filter(artifact_id=OuterRef("pk"))))
            .order_by("id")
            .values_list("id", "organization_id", "state", "legal_hold", "aliased")
        )
        locked = [
            artifact_id
            for artifact_id, organization_id, state, held, aliased in rows
            if organization_id == policy.organization_id and state == ArtifactState.READY and not held and not aliased
        ]
        if not locked:
            return 0
        return artifacts_trash(
            actor=actor,
            organization_id=policy.organization_id,
            artifact_ids=locked,
            reason=f"retention policy {policy.name}",
            details={"policy_id": policy.id, "policy": policy.name, "rule": policy.rule},
        )


def policy_run(*, policy_id: str, now: datetime | None = None, batch: int = BATCH) -> RunResult:
    """Remove what the policy selects now; a disabled or deleted policy removes nothing."""
    policy = RetentionPolicy.objects.filter(id=policy_id, enabled=True).first()
    result = RunResult()
    if policy is None:
        return result
    now = now or timezone.now()
    actor = policy_actor(policy)
    target = settings.STOWAGE_RETENTION_BATCH_MS / 1000
    low = min(MIN_CHUNK, batch)
    chunk = min(FIRST_CHUNK, batch)
    for ids in removable_batches(policy, now=now, batch=batch):
        while ids:
            part, ids = ids[:chunk], ids[chunk:]
            started = time.perf_counter()
            result.removed += _remove_batch(policy, actor, part)
            elapsed = time.perf_counter() - started
            result.longest_batch_s = max(result.longest_batch_s, elapsed)
            result.batches += 1
            # Toward the target, at most doubling or halving at a step.
            wanted = int(len(part) * target / max(elapsed, 0.001))
            chunk = max(low, min(batch, chunk * 2, max(chunk // 2, wanted)))
    with transaction.atomic():
        RetentionPolicy.objects.filter(id=policy.id).update(last_run_at=now, last_removed_count=result.removed)
        if result.removed:
            audit_record(
                actor=actor,
                action="retention_policy.run",
                resource=f"retention_policy:{policy.id}",
                details={"name": policy.name, "rule": policy.rule, "removed": result.removed},
                organization_id=policy.organization_id,
            )
    logger.info(
        "retention policy %s removed %d artifacts in %d batches (longest %.3f s)",
        policy.id,
        result.removed,
        result.batches,
        result.longest_batch_s,
    )
    return result


def policies_run(*, now: datetime | None = None, batch: int = BATCH) -> RunResult:
    total = RunResult()
    ids = list(RetentionPolicy.objects.filter(enabled=True).order_by("last_run_at", "id").values_list("id", flat=True))
    for policy_id in ids:
        result = policy_run(policy_id=policy_id, now=now, batch=batch)
        total.removed += result.removed
        total.batches += result.batches
        total.longest_batch_s = max(total.longest_batch_s, result.longest_batch_s)
    return total


@shared_task(name="retention.run_policies")
def run_policies() -> int:
    return policies_run().removed
