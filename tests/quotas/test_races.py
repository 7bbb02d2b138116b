"""Two uploads racing the last free bytes, on whatever database is configured (SQLite by default,
PostgreSQL with DATABASE_URL): both pass the check before their bytes move, the publish under the
organization's lock lets exactly one in, and the other leaves nothing behind."""

from __future__ import annotations

import io

import pytest

from artifacts.models import Artifact, ArtifactState, Blob
from artifacts.storage import blob_storage
from core.actor import Actor
from core.errors import QuotaExceeded
from quotas.counters import usage_read, usage_recount
from tests.artifacts.test_concurrency import race
from transfers.models import Transfer, TransferState
from transfers.put import artifact_put


def test_two_uploads_racing_the_last_free_bytes_one_wins_the_other_leaves_nothing(owner, transactional_db, settings):
    settings.STOWAGE_QUOTA_BYTES = "1000"
    actor = Actor(organization_id=owner.org_id, label="race-test")

    def upload(index: int):
        body = bytes([65 + index]) * 600
        try:
            return artifact_put(
                actor=actor, stream=io.BytesIO(body), remote_path=f"race/{index}.bin", content_length=600
            )
        except QuotaExceeded as exc:
            return exc

    results = race(2, upload)
    refused = [result for result in results if isinstance(result, QuotaExceeded)]
    kept = [result for result in results if isinstance(result, Artifact)]
    assert len(refused) == 1 and len(kept) == 1
    assert refused[0].details == {"quota": "bytes", "used": 600, "limit": 1000, "requested": 600}
    assert list(Artifact.objects.filter(state=ArtifactState.READY).values_list("id", flat=True)) == [kept[0].id]
    assert Blob.objects.count() == 1
    failed = Artifact.objects.exclude(id=kept[0].id).get()
    assert failed.state == ArtifactState.FAILED
    assert Transfer.objects.get(artifact=failed).state == TransferState.FAILED
    assert Transfer.objects.get(artifact=failed).error_code == "QUOTA_EXCEEDED"
    assert not blob_storage().exists(failed.storage_key)
    assert usage_read(organization_id=owner.org_id).stored_bytes == 600
    assert usage_recount(organization_id=owner.org_id).stored_bytes == 600


@pytest.mark.parametrize("count", [6])
def test_many_uploads_racing_for_the_last_artifacts_never_overshoot(owner, transactional_db, settings, count):
    settings.STOWAGE_QUOTA_ARTIFACTS = "3"
    actor = Actor(organization_id=owner.org_id, label="race-test")

    def upload(index: int):
        try:
            return artifact_put(actor=actor, stream=io.BytesIO(f"{index}".encode()), remote_path=f"race/{index}")
        except QuotaExceeded as exc:
            return exc

    results = race(count, upload)
    assert sum(isinstance(result, Artifact) for result in results) == 3
    assert Artifact.objects.filter(state=ArtifactState.READY).count() == 3
    assert usage_read(organization_id=owner.org_id).artifact_count == 3
