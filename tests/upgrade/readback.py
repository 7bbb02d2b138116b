"""Read an upgraded database back through the current code, for tests/upgrade/test_upgrade.py.

Run as ``python -m tests.upgrade.readback`` from the project's root, with the settings' environment
pointing at the upgraded database and storage. Given on stdin
``{"models": ["app_label.Model", ...], "blobs": {"model": "app_label.Model", "ids": [...]},
"search": [artifact id, ...]}``, it answers on stdout with every row of those models, read and
written as text the way the seed wrote expected.json; for each artifact id of "blobs", the size
and SHA-256 of its bytes as the current storage helper reads them (or why they could not be read)
with the blob that holds them; and for each of "search", whether searching the words of its
remote_path finds it. With ``"sweep": true`` the storage sweeper runs first, as if a day had
passed, so that objects the upgrade left to nobody are removed before the bytes are read.
"""

from __future__ import annotations

import hashlib
import json
import os
import sys


def read_blob(artifact) -> dict[str, object]:
    from artifacts.storage import blob_iter_chunks

    digest, size = hashlib.sha256(), 0
    blob = artifact.blob
    held = {"blob": None if blob is None else {"sha256": blob.sha256, "state": blob.state, "org": blob.organization_id}}
    try:
        for chunk in blob_iter_chunks(artifact.content_key):
            digest.update(chunk)
            size += len(chunk)
    except Exception as exc:
        return {"error": f"{type(exc).__name__}: {exc}", **held}
    return {"size": str(size), "checksum": f"sha256:{digest.hexdigest()}", **held}


def main() -> None:
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings")
    import django

    django.setup()
    from django.apps import apps

    from tests.upgrade.seed import model_rows

    request = json.load(sys.stdin)
    if request.get("sweep"):
        from datetime import timedelta

        from django.utils import timezone

        from transfers.sweeps import storage_sweep

        storage_sweep(now=timezone.now() + timedelta(days=1))
    answer: dict[str, object] = {
        "models": {label: model_rows(apps.get_model(label)) for label in request.get("models", [])},
    }
    blobs = request.get("blobs")
    if blobs:
        artifacts = apps.get_model(blobs["model"])._base_manager.select_related("blob").in_bulk(blobs["ids"])
        answer["blobs"] = {
            artifact_id: read_blob(artifacts[artifact_id]) if artifact_id in artifacts else {"error": "no such row"}
            for artifact_id in blobs["ids"]
        }
    if request.get("search"):
        answer["search"] = {artifact_id: searched(artifact_id) for artifact_id in request["search"]}
        from artifacts.models import ArtifactFolder, ArtifactPathHead

        answer["folders"] = {
            "root_counts": sorted(ArtifactFolder.objects.filter(path="").values_list("artifact_count", flat=True)),
            "heads": ArtifactPathHead.objects.count(),
        }
    json.dump(answer, sys.stdout, ensure_ascii=False)


def searched(artifact_id: str) -> str:
    """How a search for the words of an artifact's remote_path fares: "first page" when the
    artifact is on it, "hidden" when it is no longer visible, else "missing"."""
    from artifacts.models import Artifact
    from artifacts.search import parse_search
    from artifacts.selectors import artifact_browse

    artifact = Artifact.objects.get(id=artifact_id)
    if not artifact.is_visible:
        return "hidden"
    page = artifact_browse(
        organization_id=artifact.organization_id, search=parse_search(artifact.remote_path), limit=50
    )
    return "first page" if artifact_id in {a.id for a in page.artifacts} else "missing"


if __name__ == "__main__":
    main()
