#!/usr/bin/env python3
"""Where a folder's upload from a sandbox and its download into another spend their time.

Starts the stack (``manage.py runstack``) in a temporary directory, makes a tree of ``--files``
files of ``--size`` bytes in a sandbox, then in this process, without HTTP or Celery, runs the
worker's ``transfer_run_upload`` and ``transfer_run_download`` ``--rounds`` times (new bytes each
round), the steps inside them timed (wall clock, summed per step), and with ``--profile`` once
more under pyinstrument.

    .venv/bin/python bench/profile_folders.py [--files 10000] [--size 4096] [--rounds 3] [--profile]
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
from collections import defaultdict
from contextlib import contextmanager
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings")

from bench.folders import make_tree  # noqa: E402
from config.stack import LocalStack  # noqa: E402

spent: dict[str, float] = defaultdict(float)


def timed(module, name: str, label: str | None = None) -> None:
    """Wrap ``module.name`` so that its calls add their time to ``spent[label]``."""
    inner = getattr(module, name)

    def wrapper(*args, **kwargs):
        started = time.perf_counter()
        try:
            return inner(*args, **kwargs)
        finally:
            spent[label or name] += time.perf_counter() - started

    setattr(module, name, wrapper)


@contextmanager
def no_enqueue():
    """Transfers made without their task being sent: this process runs them."""
    import transfers.services as services

    saved = services._enqueue_on_commit
    services._enqueue_on_commit = lambda task, transfer: None
    try:
        yield
    finally:
        services._enqueue_on_commit = saved


def instrument() -> None:
    import artifacts.prefixes
    import sandboxes.runtime.trees as trees
    import transfers.folder_files as folder_files
    import transfers.folders as folders
    import transfers.worker as worker

    timed(folders, "folder_read_manifest", "up: walk + manifest_check")
    timed(folders, "files_read", "up: read + hash")
    timed(folder_files, "_read_small", "up: read + hash (thread time, both threads)")
    timed(folders, "files_store", "up: blob writes")
    timed(folders, "blob_sync", "up: syncfs")
    timed(folders.FolderWriter, "_commit", "up: batch transactions")
    timed(folders.FolderWriter, "record", "up: directory rows")
    timed(folders, "blobs_of", "up: blobs_of (unlocked)")
    timed(folders, "search_index_update", "publish: search_index_update")
    timed(folders, "folders_add", "publish: folders_add")
    timed(folders, "artifact_emit_by_id", "publish: webhooks")
    timed(worker, "folder_publish", "publish: total")
    timed(worker, "folder_upload", "up: folder_upload total")
    timed(worker, "_audit_transfer", "audit")
    timed(folders, "entries_of", "down: entries_of + manifest_check")
    timed(folders, "manifest_check", "manifest_check (all)")
    timed(trees, "_seal", "down: seal + syncfs")
    timed(trees, "_write_file", "down: write_file")
    timed(worker, "folder_download", "down: folder_download total")
    del artifacts.prefixes, folder_files


def one_round(actor, source, target, round_no: int) -> dict[str, float]:
    from artifacts.models import Artifact
    from transfers.services import artifact_download_to_sandbox, artifact_upload_from_sandbox
    from transfers.worker import transfer_run_download, transfer_run_upload

    spent.clear()
    with no_enqueue():
        up = artifact_upload_from_sandbox(
            actor=actor, sandbox=source, path="/workspace/tree", remote_path=f"prof/{round_no}", wait=False
        )
    os.sync()
    started = time.perf_counter()
    assert transfer_run_upload(transfer_id=up.id) == "succeeded"
    spent["UPLOAD (worker)"] = time.perf_counter() - started
    artifact = Artifact.objects.get(id=up.artifact_id)
    with no_enqueue():
        down = artifact_download_to_sandbox(
            actor=actor, sandbox=target, artifact=artifact, target_path=f"/workspace/in-{round_no}", wait=False
        )
    os.sync()
    started = time.perf_counter()
    assert transfer_run_download(transfer_id=down.id) == "succeeded"
    spent["DOWNLOAD (worker)"] = time.perf_counter() - started
    return dict(spent)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--files", type=int, default=10_000)
    parser.add_argument("--size", type=int, default=4096)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--profile", action="store_true")
    args = parser.parse_args()
    env = {"STOWAGE_FOLDER_MAX_ENTRIES": str(args.files + 10)}
    with (
        tempfile.TemporaryDirectory(prefix="stowage-profile-", ignore_cleanup_errors=True) as tmp,
        LocalStack(Path(tmp) / "var", env=env) as stack,
    ):
        os.environ.update(STOWAGE_VAR_DIR=str(stack.var_dir), **env)
        import django
        import httpx

        django.setup()
        from core.actor import Actor
        from sandboxes.models import Sandbox

        headers = {"Authorization": f"ApiKey {stack.api_key}", "X-Org-Id": stack.org_id}
        with httpx.Client(base_url=stack.base_url + "/api/v1", headers=headers, timeout=3600) as http:

            def call(method: str, url: str, **kwargs) -> dict:
                response = http.request(method, url, **kwargs)
                response.raise_for_status()
                return response.json()

            disk = f"{(args.files * args.size * (args.rounds + 2) >> 20) + 512}Mi"
            box = {"timeout_seconds": 3600, "disk": disk}
            source = Sandbox.objects.get(id=call("POST", "/sandbox/create", json=box)["sandbox_id"])
            target = Sandbox.objects.get(id=call("POST", "/sandbox/create", json=box)["sandbox_id"])
            actor = Actor.system(stack.org_id)
            instrument()
            rounds = []
            for round_no in range(args.rounds):
                make_tree(call, source.id, args.files, args.size)
                rounds.append(one_round(actor, source, target, round_no))
            for label in sorted({label for r in rounds for label in r}):
                values = [r.get(label, 0.0) for r in rounds]
                shown = ", ".join(f"{v:.3f}" for v in values)
                print(f"{label:40s} median {statistics.median(values):7.3f} s  ({shown})")
            if args.profile:
                from pyinstrument import Profiler

                make_tree(call, source.id, args.files, args.size)
                profiler = Profiler(interval=0.0005)
                profiler.start()
                one_round(actor, source, target, args.rounds)
                profiler.stop()
                print(profiler.output_text(unicode=False, color=False, show_all=False))
    return 0


if __name__ == "__main__":
    sys.exit(main())
