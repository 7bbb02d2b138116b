"""Every change to an artifact itself: recording a read, deleting, expiring. Moving its bytes is
the transfers app's (transfers/services.py)."""

from __future__ import annotations

from typing import Any

from celery import shared_task
from django.db import transaction
from django.utils import timezone

from artifacts.alias_services import aliases_drop_for_artifact
from artifacts.blobs import blob_release, blob_release_many
from artifacts.download_stats import download_record
from artifacts.events import DOWNLOAD_ACTIONS, artifact_emit
from artifacts.models import Artifact, ArtifactState
from artifacts.prefixes import folders_remove
from artifacts.search_index import search_index_remove
from artifacts.tasks import delete_blob
from audit.services import audit_record
from core.actor import Actor
from core.dispatch import enqueue
from quotas.counters import usage_add
from shares.events import share_emit
from shares.models import ShareLink, ShareLinkState


def artifact_record_read(
    *, actor: Actor, artifact: Artifact, action: str, details: dict[str, Any] | None = None
) -> None:
    """Audit a read; a download of the bytes is also an ``artifact.downloaded`` event and is counted
    in the artifact's download statistics (artifacts/download_stats.py)."""
    details = details or {}
    with transaction.atomic():
        audit_record(
            actor=actor,
            action=action,
            resource=f"artifact:{artifact.id}",
            sandbox_id=artifact.sandbox_id,
            session_id=artifact.session_id,
            details={"remote_path": artifact.remote_path, **details},
            organization_id=artifact.organization_id,
        )
        if action in DOWNLOAD_ACTIONS:
            via = "share link" if action == "share.download" else str(details.get("via", ""))[:40]
            artifact_emit(artifact, "artifact.downloaded", via=via, share_id=details.get("share_id"))
    if action in DOWNLOAD_ACTIONS:
        # Outside the transaction: a slow Redis must not hold the database's write lock.
        download_record(artifact_id=artifact.id)


def artifact_delete(*, actor: Actor, artifact: Artifact, reason: str = "requested") -> None:
    """Keep the row, marked deleted, for the audit trail; its blob goes once nothing else holds it.
    Its share links are revoked and its aliases dropped in the same transaction."""
    with transaction.atomic():
        deleted = Artifact.objects.filter(id=artifact.id, state=ArtifactState.READY).update(
            state=ArtifactState.DELETED, deleted_at=timezone.now()
        )
        if not deleted:
            return
        # Before the folder summaries: the counter row is locked ahead of them, as at publish.
        legacy = not artifact.is_folder and artifact.blob_id is None
        usage_add(organization_id=artifact.organization_id, artifacts=-1, stored_bytes=-artifact.size if legacy else 0)
        search_index_remove([artifact.id])
        folders_remove(artifact=artifact)
        # Through the model, not shares.services, which imports this module.
        live = ShareLink.objects.filter(
            artifact_id=artifact.id, state__in=[ShareLinkState.PENDING, ShareLinkState.ACTIVE]
        )
        announced = [link for link in live.select_for_update() if link.state == ShareLinkState.ACTIVE]
        live.update(state=ShareLinkState.REVOKED, revoked_at=timezone.now())
        for link in announced:
            share_emit(link, "share.revoked", reason="artifact deleted")
        audit_record(
            actor=actor,
            action="artifact.delete",
            resource=f"artifact:{artifact.id}",
            sandbox_id=artifact.sandbox_id,
            session_id=artifact.session_id,
            details={"remote_path": artifact.remote_path, "reason": reason, "size": artifact.size},
            organization_id=artifact.organization_id,
        )
        aliases_drop_for_artifact(actor=actor, artifact=artifact, reason=reason)
        artifact.state = ArtifactState.DELETED
        artifact_emit(artifact, "artifact.expired" if reason == "expired" else "artifact.deleted", reason=reason)
        if artifact.is_folder:
            blob_release_many(blob_ids=artifact.entries.exclude(blob=None).values_list("blob_id", flat=True).distinct())
        elif artifact.blob_id is not None:
            blob_release(blob_id=artifact.blob_id)
        else:
            # Published by the release before blobs and not adopted yet: the object is its own.
            transaction.on_commit(lambda: enqueue(delete_blob, key=artifact.storage_key))


def artifact_expire(*, now=None, batch: int = 500) -> int:
    now = now or timezone.now()
    expired = list(
        Artifact.objects.filter(state=ArtifactState.READY, expires_at__lte=now).order_by("expires_at")[:batch]
    )
    for artifact in expired:
        artifact_delete(actor=Actor.system(artifact.organization_id), artifact=artifact, reason="expired")
    return len(expired)


# Declared beside the service it runs, so that artifacts/tasks.py never imports this module back.
# The name is what web, beat and worker processes of different releases agree on during a
# rolling upgrade: it keeps the one it had in artifacts/tasks.py.
@shared_task(name="artifacts.tasks.expire_artifacts")
def expire_artifacts() -> int:
    return artifact_expire()
