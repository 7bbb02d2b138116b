"""Quotas on uploads from a sandbox, checked by the real worker: a file once it is stat'ed (before
its bytes move), a folder at publish; either way 507 QUOTA_EXCEEDED with details, nothing left."""

from __future__ import annotations

import pytest

from artifacts.models import Artifact, ArtifactState, Blob
from quotas.counters import usage_read
from quotas.models import OrganizationQuota
from tests.transfers.test_transfers import run, write
from transfers.models import Transfer, TransferState

pytestmark = pytest.mark.worker


def refused(response, quota: str) -> dict:
    assert response.status_code == 507, response.content
    error = response.json()["error"]
    assert error["code"] == "QUOTA_EXCEEDED" and error["details"]["quota"] == quota
    return error["details"]


def test_a_file_past_the_bytes_quota_is_refused_before_its_bytes_move(owner, sandbox):
    sid = sandbox["sandbox_id"]
    OrganizationQuota.objects.create(organization_id=owner.org_id, bytes=1000)
    write(owner, sid, "/workspace/fits.bin", b"f" * 1000)
    write(owner, sid, "/workspace/big.bin", b"b" * 1001)
    body = {"path": "/workspace/big.bin", "remote_path": "big.bin"}
    assert refused(owner.post(f"/sandbox/{sid}/artifacts/upload", body), "bytes") == {
        "quota": "bytes",
        "used": 0,
        "limit": 1000,
        "requested": 1001,
    }
    assert not Artifact.objects.filter(state=ArtifactState.READY).exists()
    assert not Blob.objects.exists()
    assert Transfer.objects.get().bytes_total == 1001  # the failed transfer says how big
    fits = owner.post(f"/sandbox/{sid}/artifacts/upload", {"path": "/workspace/fits.bin", "remote_path": "fits.bin"})
    assert fits.status_code == 200, fits.content
    assert usage_read(organization_id=owner.org_id).stored_bytes == 1000


def test_a_folder_past_the_bytes_quota_is_refused_at_publish_and_its_blobs_released(owner, sandbox):
    sid = sandbox["sandbox_id"]
    OrganizationQuota.objects.create(organization_id=owner.org_id, bytes=1000)
    run(
        owner,
        sid,
        "mkdir -p /workspace/out && head -c 700 /dev/zero > /workspace/out/a && head -c 700 /dev/urandom > /workspace/out/b",
    )
    body = {"path": "/workspace/out", "remote_path": "out"}
    details = refused(owner.post(f"/sandbox/{sid}/artifacts/upload", body), "bytes")
    assert details["limit"] == 1000
    assert not Artifact.objects.filter(state=ArtifactState.READY).exists()
    # The failed transfer still says how big the folder was.
    transfer = Transfer.objects.get()
    assert (transfer.state, transfer.bytes_total) == (TransferState.FAILED, 1400)


def test_the_largest_artifact_quota_applies_to_a_folder_as_a_whole(owner, sandbox):
    sid = sandbox["sandbox_id"]
    OrganizationQuota.objects.create(organization_id=owner.org_id, largest=1000)
    run(
        owner,
        sid,
        "mkdir -p /workspace/out && head -c 600 /dev/zero > /workspace/out/a && head -c 600 /dev/urandom > /workspace/out/b",
    )
    details = refused(owner.post(f"/sandbox/{sid}/artifacts/upload", {"path": "/workspace/out"}), "largest")
    assert details["requested"] == 1200
    assert usage_read(organization_id=owner.org_id).artifact_count == 0
