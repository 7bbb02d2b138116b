"""The trash: a deleted artifact is invisible at once, restorable by an admin for the trash period,
then purged, its blobs freed only when nothing else references them."""

from __future__ import annotations

import os
import time
from datetime import timedelta

import pytest
from django.utils import timezone

from accounts.models import ApiKey
from artifacts import blobs
from artifacts.models import Artifact, ArtifactState, Blob
from artifacts.services import artifact_expire
from artifacts.storage import blob_exists
from artifacts.trash_services import purge_trash
from audit.models import AuditEvent
from audit.services import audit_verify_chain
from shares.models import ShareLink, ShareLinkState
from shares.services import hash_share_token
from tests.factories import make_folder, make_sandbox, put_artifact
from webhooks.models import WebhookEvent

TOKEN = "k" * 43


def _ids(user, **query) -> list[str]:
    return [a["id"] for a in user.get("/artifacts", query).json()["artifacts"]]


def _content(user, artifact_id: str) -> bytes:
    return b"".join(user.get(f"/artifacts/{artifact_id}/content").streaming_content)


def _error(response) -> str:
    return response.json()["error"]["code"]


def test_a_deleted_artifact_is_gone_from_listing_search_download_presigned_url_and_share(owner, broker):
    artifact = put_artifact(owner, "reports/quarterly.txt", b"numbers\n")
    ShareLink.objects.create(
        organization_id=owner.org_id, artifact=artifact, token_hash=hash_share_token(TOKEN), state="active"
    )
    url = owner.get(f"/artifacts/{artifact.id}/url").json()["url"]
    assert owner.client.get(url).status_code == 200

    assert owner.delete(f"/artifacts/{artifact.id}").json() == {"success": True}
    assert Artifact.objects.get(id=artifact.id).state == ArtifactState.TRASHED
    assert _ids(owner) == [] and _ids(owner, q="quarterly") == []
    assert owner.get(f"/artifacts/{artifact.id}").status_code == 404
    assert owner.get(f"/artifacts/{artifact.id}/content").status_code == 404
    # A presigned URL that no longer works answers as every such URL does, without a hint.
    assert owner.client.get(url).status_code == 403
    assert owner.client.get(f"/s/{TOKEN}/download").status_code in (404, 410)
    assert ShareLink.objects.get().state == ShareLinkState.REVOKED
    sandbox = make_sandbox(owner.org_id)
    into = owner.post(f"/sandbox/{sandbox.id}/artifacts/download", {"artifact_id": artifact.id, "target_path": "a"})
    assert into.status_code == 404 and _error(into) == "ARTIFACT_NOT_FOUND"


def test_the_trash_lists_deleted_artifacts_newest_first_in_pages(owner):
    first = put_artifact(owner, "a.txt", b"a")
    second = put_artifact(owner, "b.txt", b"b")
    owner.delete(f"/artifacts/{second.id}")
    owner.delete(f"/artifacts/{first.id}")
    page = owner.get("/trash", {"limit": 1}).json()
    assert [a["id"] for a in page["artifacts"]] == [first.id]
    assert page["artifacts"][0]["reason"] == "requested" and page["artifacts"][0]["purge_after"]
    rest = owner.get("/trash", {"limit": 1, "cursor": page["next_cursor"]}).json()
    assert [a["id"] for a in rest["artifacts"]] == [second.id] and rest["next_cursor"] is None


def test_restore_makes_the_artifact_visible_and_searchable_again(owner):
    artifact = put_artifact(owner, "reports/annual.txt", b"numbers\n")
    owner.delete(f"/artifacts/{artifact.id}")
    response = owner.post(f"/trash/{artifact.id}/restore")
    assert response.status_code == 200, response.content
    assert response.json()["id"] == artifact.id
    assert _ids(owner) == [artifact.id] and _ids(owner, q="annual") == [artifact.id]
    assert _content(owner, artifact.id) == b"numbers\n"
    assert owner.get("/trash").json()["artifacts"] == []
    assert AuditEvent.objects.filter(action="artifact.restore", resource=f"artifact:{artifact.id}").count() == 1
    assert WebhookEvent.objects.filter(type="artifact.restored").count() == 1
    assert audit_verify_chain(organization_id=owner.org_id).ok


def test_restoring_an_expired_artifact_clears_its_past_expiry(owner):
    artifact = put_artifact(owner, "old.txt", b"old")
    Artifact.objects.filter(id=artifact.id).update(expires_at=timezone.now() - timedelta(minutes=1))
    assert artifact_expire() == 1
    assert owner.get("/trash").json()["artifacts"][0]["reason"] == "expired"
    assert _ids(owner, q="old") == []
    assert owner.post(f"/trash/{artifact.id}/restore").json()["expires_at"] is None
    assert _ids(owner) == [artifact.id] and _ids(owner, q="old") == [artifact.id]


def test_restoring_after_the_trash_period_is_refused_and_changes_nothing(owner):
    artifact = put_artifact(owner, "late.txt", b"late")
    owner.delete(f"/artifacts/{artifact.id}")
    Artifact.objects.filter(id=artifact.id).update(purge_after=timezone.now() - timedelta(seconds=1))
    response = owner.post(f"/trash/{artifact.id}/restore")
    assert response.status_code == 409 and _error(response) == "TRASH_EXPIRED"
    assert "message" in response.json()["error"]
    assert Artifact.objects.get(id=artifact.id).state == ArtifactState.TRASHED
    assert not AuditEvent.objects.filter(action="artifact.restore").exists()


def test_restoring_a_purged_artifact_is_refused(owner):
    artifact = put_artifact(owner, "gone.txt", b"gone")
    owner.delete(f"/artifacts/{artifact.id}")
    assert owner.delete(f"/trash/{artifact.id}").status_code == 200
    response = owner.post(f"/trash/{artifact.id}/restore")
    assert response.status_code == 409 and _error(response) == "TRASH_EXPIRED"


def test_another_organizations_trash_is_not_found_and_unchanged(owner, stranger):
    artifact = put_artifact(owner, "mine.txt", b"mine")
    owner.delete(f"/artifacts/{artifact.id}")
    for response in (stranger.post(f"/trash/{artifact.id}/restore"), stranger.delete(f"/trash/{artifact.id}")):
        assert response.status_code == 404 and _error(response) == "ARTIFACT_NOT_FOUND"
    assert stranger.get("/trash").json()["artifacts"] == []
    assert stranger.post("/trash/empty").json() == {"success": True, "purged": 0}
    assert Artifact.objects.get(id=artifact.id).state == ArtifactState.TRASHED


def test_restoring_an_artifact_not_in_the_trash_is_not_found(owner):
    artifact = put_artifact(owner, "here.txt", b"here")
    response = owner.post(f"/trash/{artifact.id}/restore")
    assert response.status_code == 404 and _error(response) == "ARTIFACT_NOT_FOUND"
    assert owner.post("/trash/art_nothing/restore").status_code == 404


def test_a_key_without_the_admin_scope_cannot_restore_purge_or_empty(owner):
    artifact = put_artifact(owner, "kept.txt", b"kept")
    owner.delete(f"/artifacts/{artifact.id}")
    ApiKey.objects.filter(organization_id=owner.org_id).update(scopes=["artifacts:read", "artifacts:write"])
    for response in (
        owner.get("/trash"),
        owner.post(f"/trash/{artifact.id}/restore"),
        owner.delete(f"/trash/{artifact.id}"),
        owner.post("/trash/empty"),
    ):
        assert response.status_code == 403 and _error(response) == "INSUFFICIENT_SCOPE"
    assert Artifact.objects.get(id=artifact.id).state == ArtifactState.TRASHED


def test_emptying_the_trash_purges_all_of_it_and_nothing_else(owner, stranger):
    mine = [put_artifact(owner, f"t{i}.txt", f"{i}".encode()) for i in range(3)]
    kept = put_artifact(owner, "kept.txt", b"kept")
    theirs = put_artifact(stranger, "theirs.txt", b"theirs")
    for artifact in mine:
        owner.delete(f"/artifacts/{artifact.id}")
    stranger.delete(f"/artifacts/{theirs.id}")
    assert owner.post("/trash/empty").json() == {"success": True, "purged": 3}
    assert set(Artifact.objects.filter(state=ArtifactState.DELETED).values_list("id", flat=True)) == {
        a.id for a in mine
    }
    assert Artifact.objects.get(id=kept.id).state == ArtifactState.READY
    assert Artifact.objects.get(id=theirs.id).state == ArtifactState.TRASHED
    assert AuditEvent.objects.filter(action="artifact.purge", organization_id=owner.org_id).count() == 3
    assert audit_verify_chain(organization_id=owner.org_id).ok


@pytest.fixture
def collections(transactional_db, monkeypatch):
    """Committed data, so that what a commit sends runs; blob collections are listed, not queued."""
    sent = []
    monkeypatch.setattr("core.dispatch.enqueue", lambda task, **kwargs: sent.append((task.name, kwargs)))
    return sent


def test_purge_keeps_a_blob_another_artifact_shares_and_frees_one_it_held_alone(owner, collections):
    shared = os.urandom(5000)
    first = put_artifact(owner, "a.bin", shared)
    second = put_artifact(owner, "b.bin", shared)
    alone = put_artifact(owner, "c.bin", os.urandom(5000))
    shared_blob, alone_blob = Blob.objects.get(id=first.blob_id), Blob.objects.get(id=alone.blob_id)
    for artifact in (first, alone):
        owner.delete(f"/artifacts/{artifact.id}")
    assert collections == []  # in the trash, the bytes stay
    assert owner.post("/trash/empty").json()["purged"] == 2
    released = {blob_id for _, kwargs in collections for blob_id in kwargs.get("blob_ids", [kwargs.get("blob_id")])}
    assert released == {shared_blob.id, alone_blob.id}
    for blob_id in released:
        blobs.blob_collect(blob_id=blob_id)
    assert Blob.objects.filter(id=shared_blob.id).exists()
    assert not Blob.objects.filter(id=alone_blob.id).exists()
    assert _content(owner, second.id) == shared


def test_the_periodic_purge_takes_only_artifacts_past_their_trash_period(owner):
    due, recent = put_artifact(owner, "due.txt", b"due"), put_artifact(owner, "recent.txt", b"recent")
    for artifact in (due, recent):
        owner.delete(f"/artifacts/{artifact.id}")
    Artifact.objects.filter(id=due.id).update(purge_after=timezone.now() - timedelta(seconds=1))
    assert purge_trash() == 1
    assert Artifact.objects.get(id=due.id).state == ArtifactState.DELETED
    assert Artifact.objects.get(id=recent.id).state == ArtifactState.TRASHED
    event = AuditEvent.objects.get(action="artifact.purge")
    assert event.details["reason"] == "trash period over" and event.actor == "system"
    assert purge_trash() == 0


def test_the_trash_period_is_a_setting(owner, settings):
    settings.TRASH_DAYS = 30
    artifact = put_artifact(owner, "long.txt", b"long")
    owner.delete(f"/artifacts/{artifact.id}")
    row = Artifact.objects.get(id=artifact.id)
    assert row.purge_after - row.deleted_at == timedelta(days=30)


@pytest.mark.worker
def test_the_scheduled_purge_runs_on_the_worker_and_removes_the_bytes(owner, live):
    artifact = put_artifact(owner, "scheduled.txt", b"scheduled")
    key = Blob.objects.get(id=artifact.blob_id).storage_key
    owner.delete(f"/artifacts/{artifact.id}")
    Artifact.objects.filter(id=artifact.id).update(purge_after=timezone.now() - timedelta(seconds=1))
    # By the name beat sends it under, run by the real worker.
    assert purge_trash.delay().get(timeout=30) == 1
    # The object goes first, then the blob's row; a loaded worker may take a while to get to it.
    deadline = time.monotonic() + 60
    while Blob.objects.filter(id=artifact.blob_id).exists() and time.monotonic() < deadline:
        time.sleep(0.05)
    assert not Blob.objects.filter(id=artifact.blob_id).exists() and not blob_exists(key)


def test_a_cursor_the_trash_did_not_give_is_refused(owner):
    response = owner.get("/trash", {"cursor": "garbage!"})
    assert response.status_code == 400 and _error(response) == "INVALID_CURSOR"


def test_the_trash_needs_a_key(client, db):
    for response in (
        client.get("/api/v1/trash"),
        client.post("/api/v1/trash/empty"),
        client.post("/api/v1/trash/art_x/restore"),
        client.delete("/api/v1/trash/art_x"),
        client.post("/api/v1/artifacts/art_x/legal-hold", {"reason": "x"}, content_type="application/json"),
    ):
        assert response.status_code == 401 and _error(response) == "UNAUTHORIZED"


def test_purging_a_folder_releases_its_files_blobs_and_keeps_one_another_artifact_shares(owner, collections):
    shared = os.urandom(3000)
    single = put_artifact(owner, "single.bin", shared)
    folder = make_folder(owner.org_id, "tree", {"a.bin": shared, "b.bin": os.urandom(3000)})
    owner.delete(f"/artifacts/{folder.id}")
    assert owner.delete(f"/trash/{folder.id}").status_code == 200
    for _, kwargs in collections:
        for blob_id in kwargs["blob_ids"]:
            blobs.blob_collect(blob_id=blob_id)
    assert list(Blob.objects.values_list("id", flat=True)) == [single.blob_id]
    assert _content(owner, single.id) == shared
