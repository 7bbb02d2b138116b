"""Folder artifacts on S3 (moto's server): a sandbox folder through a real worker into the bucket
and back into another sandbox (modes, links, checksums), each file stored once; its archive and
one file's presigned URL served from the bucket."""

from __future__ import annotations

import io
import tarfile

import httpx
import pytest

from artifacts.models import ArtifactEntry, Blob
from tests.artifacts.test_s3 import s3_worker  # noqa: F401  (a fixture)
from tests.factories import make_folder
from tests.transfers.test_folders import folder_round_trip


@pytest.mark.worker
def test_a_folder_goes_through_the_bucket_from_one_sandbox_into_another(owner, s3, s3_worker):  # noqa: F811
    created = [owner.post("/sandbox/create", {"timeout_seconds": 600}) for _ in range(2)]
    assert all(response.status_code == 201 for response in created), [r.content for r in created]
    source, target = (response.json()["sandbox_id"] for response in created)
    artifact = folder_round_trip(owner, source, target)
    keys = set(
        ArtifactEntry.objects.filter(artifact_id=artifact["id"], type="file").values_list(
            "blob__storage_key", flat=True
        )
    )
    # Five files, two of them the same bytes: four objects, all of them blobs, nothing else left.
    assert len(keys) == 4 and s3.object_keys() == keys
    assert Blob.objects.count() == 4 and s3.uploads() == []
    for sid in (source, target):
        owner.delete(f"/sandbox/{sid}")


def test_a_folder_on_s3_streams_as_an_archive_and_presigns_one_file(owner, s3, client):
    folder = make_folder(owner.org_id, "s3/site", {"a.txt": b"alpha", "sub/b.txt": b"beta", "sub/l": "b.txt"})
    assert len(s3.object_keys()) == 2
    got = owner.get(f"/artifacts/{folder.id}/content")
    assert got.status_code == 200
    with tarfile.open(fileobj=io.BytesIO(b"".join(got.streaming_content)), mode="r:gz") as tar:
        assert tar.extractfile("site/sub/b.txt").read() == b"beta"
        assert tar.getmember("site/sub/l").linkname == "b.txt"
    # The folder's URL is Stowage's own (there is no one object to presign); a file's is the bucket's.
    folder_url = owner.get(f"/artifacts/{folder.id}/url").json()["url"]
    assert "/dl/" in folder_url
    assert b"".join(client.get(folder_url).streaming_content)[:2] == b"\x1f\x8b"
    file_url = owner.get(f"/artifacts/{folder.id}/files/url", {"path": "sub/b.txt"}).json()["url"]
    assert file_url.startswith(s3.endpoint)
    fetched = httpx.get(file_url)
    assert fetched.status_code == 200 and fetched.content == b"beta"
    assert 'filename="b.txt"' in fetched.headers["content-disposition"]
