"""Out of the trash: restoring an artifact within its trash period, purging it (at once, the whole
trash, or by the periodic purge once the period is over). A purged artifact's row stays, state
``deleted``, for the audit trail; its blobs go once nothing else references them."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable

from celery import shared_task
from django.db import transaction
from django.utils import timezone

from artifacts.blobs import blob_release_many
from artifacts.events import artifact_emit
from artifacts.models import Artifact, ArtifactEntry, ArtifactState
from artifacts.prefixes import folders_restore
from artifacts.search_index import search_index_update
from artifacts.tasks import delete_blob
from audit.services import audit_record, audit_record_many
from core.actor import Actor
from core.dispatch import enqueue
from core.errors import Conflict, NotFound

PURGE_BATCH = 500


def _not_in_trash(artifact_id: str) -> NotFound:
    return NotFound(f"Artifact '{artifact_id}' is not in the trash", code="ARTIFACT_NOT_FOUND")


def _expired(artifact: Artifact) -> Conflict:
    return Conflict(
        f"Artifact '{artifact.id}' left the trash period on {artifact.purge_after:%Y-%m-%d %H:%M} UTC "
        "and can no longer be restored",
        code="TRASH_EXPIRED",
        details={"purge_after": artifact.purge_after.isoformat()},
    )


def artifact_restore(*, actor: Actor, organization_id: str, artifact_id: str) -> Artifact:
    """Make a trashed artifact ready again, searchable and in its folder; an expiry already passed
    is cleared (it would send the artifact straight back). Its share links stay revoked and its
    aliases stay dropped. Another organization's artifact, or one not in the trash, is 404; one
    past its trash period (or already purged from it) is 409 ``TRASH_EXPIRED``."""
    now = timezone.now()
    with transaction.atomic():
        artifact = (
            Artifact.objects.select_for_update()
            .filter(organization_id=organization_id, id=artifact_id, purge_after__isnull=False)
            .first()
        )
        if artifact is None or artifact.state not in (ArtifactState.TRASHED, ArtifactState.DELETED):
            raise _not_in_trash(artifact_id)
        if artifact.state == ArtifactState.DELETED or artifact.purge_after <= now:
            raise _expired(artifact)
        cleared = artifact.expires_at is not None and artifact.expires_at <= now
        changes = {"state": ArtifactState.READY, "deleted_at": None, "purge_after": None, "trashed_reason": ""}
        if cleared:
            changes["expires_at"] = None
        Artifact.objects.filter(id=artifact.id, state=ArtifactState.TRASHED).update(**changes)
        reason = artifact.trashed_reason
        for field, value in changes.items():
            setattr(artifact, field, value)
        search_index_update(artifact)
        folders_restore(artifact=artifact)
        audit_record(
            actor=actor,
            action="artifact.restore",
            resource=f"artifact:{artifact.id}",
            sandbox_id=artifact.sandbox_id,
            session_id=artifact.session_id,
            details={"remote_path": artifact.remote_path, "trashed_reason": reason, "expiry_cleared": cleared},
            organization_id=organization_id,
        )
        artifact_emit(artifact, "artifact.restored", trashed_reason=reason)
    return artifact


def artifacts_purge(*, actor: Actor, organization_id: str, artifact_ids: Iterable[str], reason: str) -> int:
    """Purge the trashed artifacts among ``artifact_ids`` (none under a legal hold) in one
    transaction: marked deleted, each audited, their blobs released once it commits (a blob that
    another artifact or folder entry still references stays). Returns how many were purged."""
    ids = sorted(set(artifact_ids))
    if not ids:
        return 0
    with transaction.atomic():
        purged = list(
            Artifact.objects.select_for_update()
            .filter(organization_id=organization_id, id__in=ids, state=ArtifactState.TRASHED, legal_hold=False)
            .order_by("id")
        )
        if not purged:
            return 0
        purged_ids = [artifact.id for artifact in purged]
        Artifact.objects.filter(id__in=purged_ids, state=ArtifactState.TRASHED).update(state=ArtifactState.DELETED)
        folders = [artifact.id for artifact in purged if artifact.is_folder]
        blob_ids = [artifact.blob_id for artifact in purged if artifact.blob_id and not artifact.is_folder]
        if folders:
            entries = ArtifactEntry.objects.filter(artifact_id__in=folders).exclude(blob=None)
            blob_ids += entries.values_list("blob_id", flat=True).distinct()
        blob_release_many(blob_ids=blob_ids)
        for artifact in purged:
            if not artifact.is_folder and artifact.blob_id is None:
                # Published by the release before blobs and not adopted yet: the object is its own.
                transaction.on_commit(lambda key=artifact.storage_key: enqueue(delete_blob, key=key))
        audit_record_many(
            actor=actor,
            organization_id=organization_id,
            entries=[
                {
                    "action": "artifact.purge",
                    "resource": f"artifact:{artifact.id}",
                    "sandbox_id": artifact.sandbox_id,
                    "session_id": artifact.session_id,
                    "details": {
                        "remote_path": artifact.remote_path,
                        "reason": reason,
                        "trashed_reason": artifact.trashed_reason,
                        "size": artifact.size,
                    },
                }
                for artifact in purged
            ],
        )
    return len(purged)


def artifact_purge(*, actor: Actor, organization_id: str, artifact_id: str) -> None:
    """Purge one trashed artifact now; 404 when the organization has no such artifact in the trash."""
    if not artifacts_purge(actor=actor, organization_id=organization_id, artifact_ids=[artifact_id], reason="purged"):
        raise _not_in_trash(artifact_id)


def trash_empty(*, actor: Actor, organization_id: str) -> int:
    """Purge everything in the organization's trash, a batch per transaction; how many went."""
    total = 0
    while True:
        batch = list(
            Artifact.objects.filter(organization_id=organization_id, state=ArtifactState.TRASHED, legal_hold=False)
            .order_by("id")
            .values_list("id", flat=True)[:PURGE_BATCH]
        )
        if not batch:
            return total
        total += artifacts_purge(actor=actor, organization_id=organization_id, artifact_ids=batch, reason="emptied")


def trash_purge_due(*, now=None, batch: int = PURGE_BATCH) -> int:
    """Purge a batch of artifacts whose trash period is over, one transaction per organization."""
    now = now or timezone.now()
    due = (
        Artifact.objects.filter(state=ArtifactState.TRASHED, purge_after__lte=now, legal_hold=False)
        .order_by("purge_after")
        .values_list("organization_id", "id")[:batch]
    )
    by_org: dict[str, list[str]] = defaultdict(list)
    for organization_id, artifact_id in due:
        by_org[organization_id].append(artifact_id)
    return sum(
        artifacts_purge(actor=Actor.system(org), organization_id=org, artifact_ids=ids, reason="trash period over")
        for org, ids in by_org.items()
    )


@shared_task(name="artifacts.tasks.purge_trash")
def purge_trash() -> int:
    """Beat's periodic purge: batches until none is full, at most twenty a run."""
    total = 0
    for _ in range(20):
        purged = trash_purge_due()
        total += purged
        if purged < PURGE_BATCH:
            break
    return total
