"""The trash: an artifact deleted by a person, a retention policy or its expiry is hidden at once
(state ``trashed``), restorable by an organization admin until ``purge_after``, then purged
(state ``deleted``, its blobs released). A trashed artifact keeps its blobs (BLOB_HOLDING_STATES).

Moving to the trash is one transaction per call, whatever the number of artifacts: a
compare-and-set of the rows still ready and not held, then the search index, the folder
summaries, share links, aliases, audit events and webhook events in bulk, so a retention policy
trashing thousands of versions runs a constant number of statements per batch.
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import timedelta
from typing import Any

from django.conf import settings
from django.db import transaction
from django.utils import timezone

from artifacts.events import artifact_data
from artifacts.models import Artifact, ArtifactAlias, ArtifactState
from artifacts.prefixes import folders_remove_many
from artifacts.search_index import search_index_remove
from audit.services import audit_record_many
from core.actor import Actor
from shares.events import share_data
from shares.models import ShareLink, ShareLinkState
from webhooks.outbox import emit_many

# Which webhook event a move to the trash is, by its reason; any other reason is a deletion.
EVENT_BY_REASON = {"expired": "artifact.expired"}


def trash_period() -> timedelta:
    return timedelta(days=settings.TRASH_DAYS)


def artifacts_trash(
    *,
    actor: Actor,
    organization_id: str,
    artifact_ids: Iterable[str],
    reason: str,
    details: dict[str, Any] | None = None,
) -> int:
    """Move the ready artifacts among ``artifact_ids`` that carry no legal hold to the trash, in
    one transaction; the others (another organization's, pending, already trashed, held) are left
    as they are. Returns how many moved."""
    ids = sorted(set(artifact_ids))
    if not ids:
        return 0
    details = details or {}
    now = timezone.now()
    purge_after = now + trash_period()
    with transaction.atomic():
        # Locked in id order, so two bulk calls over overlapping ids never deadlock; the update
        # below then changes exactly these rows. Found by their ids alone and sorted out here: a
        # condition on an indexed column beside the ids can lead SQLite's planner to walk that
        # index over every ready artifact instead of looking the ids up.
        locked = Artifact.objects.select_for_update().filter(id__in=ids).order_by("id")
        moving = [
            artifact
            for artifact in locked
            if artifact.organization_id == organization_id
            and artifact.state == ArtifactState.READY
            and not artifact.legal_hold
        ]
        if not moving:
            return 0
        moved_ids = [artifact.id for artifact in moving]
        Artifact.objects.filter(id__in=moved_ids).update(
            state=ArtifactState.TRASHED, deleted_at=now, purge_after=purge_after, trashed_reason=reason[:200]
        )
        for artifact in moving:
            artifact.state, artifact.deleted_at, artifact.purge_after = ArtifactState.TRASHED, now, purge_after
            artifact.trashed_reason = reason[:200]
        search_index_remove(moved_ids)
        folders_remove_many(organization_id=organization_id, artifacts=moving)
        revoked = _shares_revoke(moved_ids, now)
        dropped = _aliases_drop(moved_ids)
        entries = [_trash_entry(artifact, reason, details) for artifact in moving]
        entries += [_alias_entry(alias, reason) for alias in dropped]
        audit_record_many(actor=actor, organization_id=organization_id, entries=entries)
        event = EVENT_BY_REASON.get(reason, "artifact.deleted")
        events = [(event, {**artifact_data(artifact), "reason": reason}) for artifact in moving]
        events += [("share.revoked", {**share_data(link), "reason": "artifact deleted"}) for link in revoked]
        emit_many(organization_id=organization_id, events=events)
    return len(moving)


def _shares_revoke(artifact_ids: list[str], now) -> list[ShareLink]:
    """Revoke the artifacts' live share links; the active ones (announced) are returned."""
    live = ShareLink.objects.filter(
        artifact_id__in=artifact_ids, state__in=[ShareLinkState.PENDING, ShareLinkState.ACTIVE]
    )
    announced = [link for link in live.select_for_update() if link.state == ShareLinkState.ACTIVE]
    live.update(state=ShareLinkState.REVOKED, revoked_at=now)
    for link in announced:
        link.state, link.revoked_at = ShareLinkState.REVOKED, now
    return announced


def _aliases_drop(artifact_ids: list[str]) -> list[ArtifactAlias]:
    """The aliases of artifacts going to the trash go with them: where an alias pointed is a
    decision someone made, and moving it to another version would be a guess. A restore does not
    bring them back."""
    aliases = list(
        ArtifactAlias.objects.select_for_update()
        .filter(artifact_id__in=artifact_ids)
        .select_related("artifact")
        .order_by("artifact_id", "name")
    )
    if aliases:
        ArtifactAlias.objects.filter(id__in=[alias.id for alias in aliases]).delete()
    return aliases


def _trash_entry(artifact: Artifact, reason: str, details: dict[str, Any]) -> dict[str, Any]:
    return {
        "action": "artifact.delete",
        "resource": f"artifact:{artifact.id}",
        "sandbox_id": artifact.sandbox_id,
        "session_id": artifact.session_id,
        "details": {
            **details,
            "remote_path": artifact.remote_path,
            "reason": reason,
            "size": artifact.size,
            "trash": True,
            "purge_after": artifact.purge_after.isoformat(),
        },
    }


def _alias_entry(alias: ArtifactAlias, reason: str) -> dict[str, Any]:
    return {
        "action": "artifact.alias.delete",
        "resource": f"alias:{alias.remote_path}@{alias.name}",
        "details": {
            "remote_path": alias.remote_path,
            "alias": alias.name,
            "from": {"artifact_id": alias.artifact_id, "version": alias.artifact.version},
            "reason": f"artifact {reason}",
        },
    }
