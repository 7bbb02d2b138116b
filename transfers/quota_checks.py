"""The quota check an upload makes before its bytes move, which a retry of an upload that was
already kept is spared: the retry adds nothing (the publish folds it into its twin), and the SDK
must get its artifact back, not a refusal, when the first answer was lost."""

from __future__ import annotations

from datetime import timedelta

from django.conf import settings
from django.utils import timezone

from artifacts.models import Artifact, ArtifactState
from core.errors import QuotaExceeded
from quotas.enforcement import quota_check_upload


def _may_be_retry(artifact: Artifact, size: int | None) -> bool:
    """A ready artifact made within the retry window from the same place, by the same caller, of
    this size: the publish decides whether it is the twin (``transfers.worker._retry_twin``)."""
    window_start = timezone.now() - timedelta(seconds=settings.ARTIFACT_RETRY_WINDOW_SECONDS)
    candidates = Artifact.objects.filter(
        organization_id=artifact.organization_id,
        remote_path=artifact.remote_path,
        state=ArtifactState.READY,
        sandbox_id=artifact.sandbox_id,
        session_id=artifact.session_id,
        source_path=artifact.source_path,
        created_by_api_key_id=artifact.created_by_api_key_id,
        created_by_user_id=artifact.created_by_user_id,
        created_at__gte=window_start,
    )
    return (candidates.filter(size=size) if size is not None else candidates).exists()


def upload_quota_check(artifact: Artifact, size: int | None) -> None:
    """QuotaExceeded when no quota leaves room for ``artifact`` (pending, saved or not) of ``size``
    bytes (None: not known yet), unless it may be a retry; the publish checks again either way."""
    try:
        quota_check_upload(organization_id=artifact.organization_id, size=size)
    except QuotaExceeded:
        # Looked for only once refused: most uploads are no retry, and most have room.
        if not _may_be_retry(artifact, size):
            raise
