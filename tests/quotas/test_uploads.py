"""Each quota against real uploads through the API's streamed PUT: refused before any byte moves
with 507 QUOTA_EXCEEDED and its details, nothing left behind; the counters follow every change."""

from __future__ import annotations

import hashlib

import pytest

from artifacts.blobs import blob_collect
from artifacts.models import Artifact, ArtifactState, Blob
from artifacts.services import artifact_delete
from artifacts.trash_services import artifact_purge
from core.actor import Actor
from quotas.counters import usage_read, usage_recount
from quotas.models import OrganizationQuota
from tests.factories import put_artifact


def put(user, remote_path: str, body: bytes):
    return user.client.put(
        f"/api/v1/artifacts?remote_path={remote_path}",
        body,
        content_type="application/octet-stream",
        headers=user.headers(),
    )


def quota_error(response, quota: str) -> dict:
    assert response.status_code == 507, response.content
    error = response.json()["error"]
    assert error["code"] == "QUOTA_EXCEEDED"
    assert error["details"]["quota"] == quota
    assert "quota" in error["message"]
    return error


def test_an_upload_that_fills_the_bytes_quota_exactly_is_kept(owner, settings):
    settings.STOWAGE_QUOTA_BYTES = "1000"
    put_artifact(owner, "a.bin", b"a" * 600)
    put_artifact(owner, "b.bin", b"b" * 400)
    assert usage_read(organization_id=owner.org_id).stored_bytes == 1000


def test_an_upload_one_byte_past_the_bytes_quota_is_refused_and_leaves_nothing(owner, settings):
    settings.STOWAGE_QUOTA_BYTES = "1000"
    put_artifact(owner, "a.bin", b"a" * 600)
    artifacts, blobs = Artifact.objects.count(), Blob.objects.count()
    error = quota_error(put(owner, "b.bin", b"b" * 401), "bytes")
    assert error["details"] == {"quota": "bytes", "used": 600, "limit": 1000, "requested": 401}
    assert (Artifact.objects.count(), Blob.objects.count()) == (artifacts, blobs)
    assert usage_read(organization_id=owner.org_id).stored_bytes == 600


def test_bytes_already_stored_take_no_room_of_a_full_quota_when_their_digest_is_declared(owner, settings):
    settings.STOWAGE_QUOTA_BYTES = "600"
    body = b"a" * 600
    put_artifact(owner, "a.bin", body)
    # Undeclared, the body's size is all that is known before it is read: it is refused up front.
    quota_error(put(owner, "copy.bin", body), "bytes")
    response = owner.client.put(
        "/api/v1/artifacts?remote_path=copy.bin",
        body,
        content_type="application/octet-stream",
        headers=owner.headers(**{"X-Stowage-Sha256": hashlib.sha256(body).hexdigest()}),
    )
    assert response.status_code == 201, response.content
    assert usage_read(organization_id=owner.org_id).stored_bytes == 600


def test_the_artifacts_quota_counts_artifacts_not_bytes(owner, settings):
    settings.STOWAGE_QUOTA_ARTIFACTS = "2"
    put_artifact(owner, "a.txt", b"same")
    put_artifact(owner, "b.txt", b"same")
    error = quota_error(put(owner, "c.txt", b"same"), "artifacts")
    assert error["details"] == {"quota": "artifacts", "used": 2, "limit": 2, "requested": 1}
    assert Artifact.objects.filter(organization_id=owner.org_id).count() == 2


def test_the_largest_artifact_quota_refuses_one_byte_more(owner, settings):
    settings.STOWAGE_QUOTA_LARGEST_ARTIFACT = "1Ki"
    put_artifact(owner, "fits.bin", b"x" * 1024)
    error = quota_error(put(owner, "big.bin", b"x" * 1025), "largest")
    assert error["details"]["limit"] == 1024 and error["details"]["requested"] == 1025
    assert not Artifact.objects.filter(remote_path="big.bin").exists()


def test_an_override_wins_over_the_default_and_zero_is_unlimited(owner, settings):
    settings.STOWAGE_QUOTA_BYTES = "10"
    OrganizationQuota.objects.create(organization_id=owner.org_id, bytes=0)
    put_artifact(owner, "a.bin", b"a" * 100)
    OrganizationQuota.objects.filter(organization_id=owner.org_id).update(bytes=150)
    quota_error(put(owner, "b.bin", b"b" * 51), "bytes")


def test_another_organizations_use_does_not_count(owner, stranger, settings):
    settings.STOWAGE_QUOTA_BYTES = "100"
    put_artifact(stranger, "theirs.bin", b"t" * 100)
    put_artifact(owner, "mine.bin", b"m" * 100)


def test_purging_an_artifact_and_collecting_its_blob_frees_room(owner, settings):
    settings.STOWAGE_QUOTA_BYTES = "100"
    settings.STOWAGE_QUOTA_ARTIFACTS = "1"
    first = put_artifact(owner, "a.bin", b"a" * 100)
    artifact_delete(actor=Actor.system(owner.org_id), artifact=first)
    # In the trash it still holds its bytes and its place.
    assert usage_read(organization_id=owner.org_id).artifact_count == 1
    artifact_purge(actor=Actor.system(owner.org_id), organization_id=owner.org_id, artifact_id=first.id)
    assert usage_read(organization_id=owner.org_id).artifact_count == 0
    assert blob_collect(blob_id=first.blob_id)
    assert usage_read(organization_id=owner.org_id).stored_bytes == 0
    put_artifact(owner, "b.bin", b"b" * 100)


def test_a_trashed_artifact_still_counts(owner, settings):
    put_artifact(owner, "a.bin", b"a" * 100)
    Artifact.objects.filter(organization_id=owner.org_id).update(state=ArtifactState.TRASHED)
    usage = usage_recount(organization_id=owner.org_id)
    assert (usage.stored_bytes, usage.artifact_count) == (100, 1)


def test_the_counters_agree_with_a_recount(owner):
    put_artifact(owner, "a.bin", b"a" * 100)
    put_artifact(owner, "b.bin", b"a" * 100)
    doomed = put_artifact(owner, "c.bin", b"c" * 7)
    artifact_delete(actor=Actor.system(owner.org_id), artifact=doomed)
    artifact_purge(actor=Actor.system(owner.org_id), organization_id=owner.org_id, artifact_id=doomed.id)
    blob_collect(blob_id=doomed.blob_id)
    kept = usage_read(organization_id=owner.org_id)
    counted = usage_recount(organization_id=owner.org_id)
    assert (kept.stored_bytes, kept.artifact_count) == (counted.stored_bytes, counted.artifact_count) == (100, 2)


@pytest.mark.parametrize("quota", ["bytes", "artifacts", "largest", "sandboxes"])
def test_without_quotas_nothing_is_refused(owner, quota):
    put_artifact(owner, f"{quota}.bin", b"q" * 10)


def test_a_retried_upload_at_a_full_quota_gets_the_artifact_it_made(owner, settings):
    settings.STOWAGE_QUOTA_BYTES = "600"
    settings.STOWAGE_QUOTA_ARTIFACTS = "1"
    first = put_artifact(owner, "a.bin", b"a" * 600)
    again = put(owner, "a.bin", b"a" * 600)
    assert again.status_code == 201, again.content
    assert again.json()["id"] == first.id
    assert Artifact.objects.filter(state=ArtifactState.READY).count() == 1
    # Not a retry: the same name with other bytes is a new version, and there is no room for it.
    quota_error(put(owner, "a.bin", b"b" * 600), "artifacts")
