"""The object store's side of a browser upload that goes straight to S3: multipart uploads
whose parts the browser sends itself, the bucket's CORS rule that lets it, and the removal of
uploads whose writer went away."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

from artifacts.storage import BlobError, UploadGone, blob_storage, is_s3, s3_base, s3_client, s3_object_key


def _s3_call(action: str, call: Callable[[], Any]) -> Any:
    from botocore.exceptions import BotoCoreError, ClientError

    try:
        return call()
    except ClientError as exc:
        if exc.response.get("Error", {}).get("Code") == "NoSuchUpload":
            raise UploadGone("the upload is no longer open on the object store") from exc
        raise BlobError(f"the object store refused to {action}: {exc}") from exc
    except BotoCoreError as exc:
        raise BlobError(f"the object store could not {action}: {exc}") from exc


def s3_multipart_begin(key: str) -> str:
    """Open a multipart upload whose every part must carry its SHA-256; its upload id."""
    storage = blob_storage()
    client = s3_client(storage)
    answer = _s3_call(
        "begin the upload",
        lambda: client.create_multipart_upload(
            Bucket=storage.bucket_name,
            Key=s3_object_key(storage, key),
            ChecksumAlgorithm="SHA256",
            ContentType="application/octet-stream",
        ),
    )
    return answer["UploadId"]


def s3_presigned_part_url(key: str, upload_id: str, *, number: int, size: int, sha256_b64: str, expires_in: int) -> str:
    """A URL for PUT of one part. Its length and its SHA-256 are signed headers: the store
    refuses a part of any other length or whose bytes do not hash to the value given."""
    storage = blob_storage()
    params = {
        "Bucket": storage.bucket_name,
        "Key": s3_object_key(storage, key),
        "UploadId": upload_id,
        "PartNumber": number,
        "ContentLength": size,
        "ChecksumSHA256": sha256_b64,
    }
    return s3_client(storage).generate_presigned_url(
        "upload_part", Params=params, ExpiresIn=expires_in, HttpMethod="PUT"
    )


def s3_multipart_parts(key: str, upload_id: str) -> list[dict]:
    """The parts the store holds for an open upload, by part number."""
    storage = blob_storage()
    client = s3_client(storage)
    params = {"Bucket": storage.bucket_name, "Key": s3_object_key(storage, key), "UploadId": upload_id}
    parts: list[dict] = []
    marker = 0
    while True:
        page = _s3_call("list the parts", lambda marker=marker: client.list_parts(**params, PartNumberMarker=marker))
        parts.extend(page.get("Parts", ()))
        if not page.get("IsTruncated"):
            return sorted(parts, key=lambda part: part["PartNumber"])
        marker = page["NextPartNumberMarker"]


def s3_multipart_complete(key: str, upload_id: str, parts: list[dict]) -> None:
    """Join the parts into the object: the atomic publish under the final key."""
    storage = blob_storage()
    client = s3_client(storage)
    listed = [
        {
            "PartNumber": part["PartNumber"],
            "ETag": part["ETag"],
            **({"ChecksumSHA256": part["ChecksumSHA256"]} if part.get("ChecksumSHA256") else {}),
        }
        for part in parts
    ]
    _s3_call(
        "complete the upload",
        lambda: client.complete_multipart_upload(
            Bucket=storage.bucket_name,
            Key=s3_object_key(storage, key),
            UploadId=upload_id,
            MultipartUpload={"Parts": listed},
        ),
    )


def s3_multipart_abort(key: str, upload_id: str) -> None:
    """Drop an open upload and its parts; one already gone is not an error."""
    storage = blob_storage()
    client = s3_client(storage)
    try:
        _s3_call(
            "abort the upload",
            lambda: client.abort_multipart_upload(
                Bucket=storage.bucket_name, Key=s3_object_key(storage, key), UploadId=upload_id
            ),
        )
    except UploadGone:
        pass


def s3_bucket_cors() -> list[dict]:
    """The bucket's CORS rules (none when it has no configuration)."""
    from botocore.exceptions import ClientError

    storage = blob_storage()
    try:
        return s3_client(storage).get_bucket_cors(Bucket=storage.bucket_name).get("CORSRules", [])
    except ClientError as exc:
        if exc.response.get("Error", {}).get("Code") == "NoSuchCORSConfiguration":
            return []
        raise BlobError(f"the object store refused to show the bucket's CORS rules: {exc}") from exc


def s3_set_bucket_cors(rules: list[dict]) -> None:
    storage = blob_storage()
    client = s3_client(storage)
    if rules:
        _s3_call(
            "set the bucket's CORS rules",
            lambda: client.put_bucket_cors(Bucket=storage.bucket_name, CORSConfiguration={"CORSRules": rules}),
        )
    else:
        _s3_call("remove the bucket's CORS rules", lambda: client.delete_bucket_cors(Bucket=storage.bucket_name))


def blob_abort_stale_uploads(before: datetime, *, keep: set[str] = frozenset()) -> int:
    """Abort the multipart uploads begun before ``before`` (left by writers that died before they
    could abort), except those in ``keep``; their parts are stored and billed until then.
    Nothing to do on other storages."""
    storage = blob_storage()
    if not is_s3(storage):
        return 0
    client = s3_client(storage)
    aborted = 0
    prefix = s3_base(storage)
    for page in client.get_paginator("list_multipart_uploads").paginate(Bucket=storage.bucket_name, Prefix=prefix):
        for upload in page.get("Uploads", ()):
            initiated = upload["Initiated"]
            if initiated.tzinfo is None:
                initiated = initiated.replace(tzinfo=UTC)
            if initiated < before and upload["UploadId"] not in keep:
                try:
                    _s3_call(
                        "abort the upload",
                        lambda upload=upload: client.abort_multipart_upload(
                            Bucket=storage.bucket_name, Key=upload["Key"], UploadId=upload["UploadId"]
                        ),
                    )
                except UploadGone:
                    continue  # completed or aborted meanwhile
                aborted += 1
    return aborted
