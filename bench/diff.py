#!/usr/bin/env python3
"""What comparing two versions costs: ``GET /api/v1/artifacts/{id}/diff?against=`` handled
in-process by Django (``django.test.Client`` with a real API key; SQLite and local storage in a
temporary var dir), timed interleaved over ``--rounds`` rounds against baselines measured in
the same run with public tools:

  * folders: two versions of a folder stored as tar.gz, ``--files`` files of ``--file-size``
    random bytes each, a tenth of them changed in the second. The diff streams both archives and
    hashes every member. Baseline: ``tar -xzf`` of both archives into a temporary directory and
    ``sha256sum`` over every file (what a person would do by hand). Target: median <= 1.5x
    the baseline's.
  * text: two versions of a ``--text-size`` text file (lines of about 60 characters, one line
    in a hundred changed). Baseline: GNU ``diff -u`` of the same two files. No target: difflib is
    pure Python, and the bound on file size (``STOWAGE_DIFF_TEXT_MAX_BYTES``) is what keeps it
    short; the number is here so that the bound can be chosen knowing it.

    .venv/bin/python bench/diff.py [--files 10000] [--file-size 4096] [--text-size 1MiB] [--rounds 5] [--json]
"""

from __future__ import annotations

import argparse
import io
import json
import os
import random
import shutil
import statistics
import subprocess
import sys
import tarfile
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))


def _size(text: str) -> int:
    units = {"KiB": 1 << 10, "MiB": 1 << 20, "GiB": 1 << 30}
    for unit, factor in units.items():
        if text.endswith(unit):
            return int(float(text[: -len(unit)]) * factor)
    return int(text)


def _django_setup(var_dir: Path) -> None:
    for name in ("STOWAGE_DATABASE_NAME", "DATABASE_URL", "REDIS_URL", "STOWAGE_SANDBOX_ROOT"):
        os.environ.pop(name, None)
    os.environ["STOWAGE_VAR_DIR"] = str(var_dir)
    os.environ["DJANGO_SETTINGS_MODULE"] = "config.settings"
    import django

    django.setup()
    from django.core.management import call_command

    call_command("migrate", verbosity=0)


def _folder(path: Path, files: int, size: int, changed: set[int]) -> None:
    with tarfile.open(path, mode="w:gz", format=tarfile.PAX_FORMAT) as tar:
        for i in range(files):
            # Random bytes, the same for file i in both versions, so that gzip cannot shrink them.
            data = bytearray(random.Random(i).randbytes(size))
            if i in changed:
                data[0] ^= 0xFF
            info = tarfile.TarInfo(f"shard-{i // 1000:02d}/part-{i:05d}.bin")
            info.size, info.mode = size, 0o644
            tar.addfile(info, io.BytesIO(bytes(data)))


def _text(size: int, rng: random.Random, changed_every: int | None) -> bytes:
    lines, total, n = [], 0, 0
    while total < size:
        line = f"{n:08d} " + "".join(rng.choice("abcdefghijklmnopqrstuvwxyz ") for _ in range(50))
        if changed_every and n % changed_every == 0:
            line += " changed"
        lines.append(line)
        total += len(line) + 1
        n += 1
    return ("\n".join(lines) + "\n").encode()[:size]


def _median_ms(samples: list[float]) -> float:
    return round(statistics.median(samples) * 1000, 1)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--files", type=int, default=10_000)
    parser.add_argument("--file-size", type=_size, default=4096)
    parser.add_argument("--text-size", type=_size, default=1 << 20)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()

    work = Path(tempfile.mkdtemp(prefix="stowage-bench-diff-"))
    try:
        _django_setup(work / "var")
        from django.conf import settings
        from django.test import Client

        from accounts.services import organization_bootstrap
        from core.actor import Actor
        from transfers.services import artifact_put

        settings.DIFF_ARCHIVE_MAX_BYTES = 1 << 40
        settings.DIFF_MAX_ENTRIES = max(settings.DIFF_MAX_ENTRIES, args.files)
        settings.DIFF_TEXT_MAX_BYTES = max(settings.DIFF_TEXT_MAX_BYTES, args.text_size)
        org, _user, _password, _key, secret = organization_bootstrap(org_name="Bench", email="bench@bench.test")
        actor = Actor(organization_id=org.id, label="bench")
        rng = random.Random(20251201)
        changed = set(rng.sample(range(args.files), args.files // 10))
        archives = [work / "v1.tar.gz", work / "v2.tar.gz"]
        _folder(archives[0], args.files, args.file_size, set())
        _folder(archives[1], args.files, args.file_size, changed)
        texts = [work / "v1.txt", work / "v2.txt"]
        texts[0].write_bytes(_text(args.text_size, random.Random(1), None))
        texts[1].write_bytes(_text(args.text_size, random.Random(1), 100))

        def store(path: Path, remote_path: str, folder: bool):
            from artifacts.models import Artifact

            with open(path, "rb") as handle:
                artifact = artifact_put(actor=actor, stream=handle, remote_path=remote_path)
            if folder:
                Artifact.objects.filter(id=artifact.id).update(is_archive=True)
            return artifact

        folder_v1, folder_v2 = (store(p, "bench/folder", True) for p in archives)
        text_v1, text_v2 = (store(p, "bench/notes.txt", False) for p in texts)
        client = Client()
        headers = {"Authorization": f"ApiKey {secret}", "X-Org-Id": org.id}

        def api_diff(after, before) -> dict:
            response = client.get(f"/api/v1/artifacts/{after.id}/diff", {"against": before.id}, headers=headers)
            assert response.status_code == 200, response.content[:500]
            return response.json()

        check = api_diff(folder_v2, folder_v1)["entries"]
        assert check["complete"] and len(check["changed"]) == len(changed), (check["complete"], len(check["changed"]))

        def tar_baseline() -> None:
            # Every byte of both archives decompressed and hashed: the work the diff does, in C.
            for archive in archives:
                tar = subprocess.Popen(["tar", "-xzOf", str(archive)], stdout=subprocess.PIPE)
                subprocess.run(["sha256sum"], stdin=tar.stdout, stdout=subprocess.DEVNULL, check=True)
                tar.stdout.close()
                assert tar.wait() == 0

        def list_baseline() -> None:
            # Both archives decompressed and listed, nothing hashed: a floor.
            for archive in archives:
                subprocess.run(["tar", "-tvzf", str(archive)], stdout=subprocess.DEVNULL, check=True)

        def diff_baseline() -> None:
            subprocess.run(["diff", "-u", str(texts[0]), str(texts[1])], stdout=subprocess.DEVNULL, check=False)

        timings: dict[str, list[float]] = {"folder": [], "tar": [], "tar_list": [], "text": [], "diff": []}
        steps = {
            "folder": lambda: api_diff(folder_v2, folder_v1),
            "tar": tar_baseline,
            "tar_list": list_baseline,
            "text": lambda: api_diff(text_v2, text_v1),
            "diff": diff_baseline,
        }
        for _ in range(args.rounds):
            for name, step in steps.items():
                os.sync()
                start = time.perf_counter()
                step()
                timings[name].append(time.perf_counter() - start)
        text_result = api_diff(text_v2, text_v1)["text_diff"]
        result = {
            "files": args.files,
            "file_size": args.file_size,
            "archive_bytes": archives[0].stat().st_size,
            "text_bytes": args.text_size,
            "text_diff_lines": len(text_result["diff"].splitlines()),
            "text_diff_truncated": text_result["truncated"],
            "median_ms": {name: _median_ms(samples) for name, samples in timings.items()},
        }
        result["folder_ratio"] = round(result["median_ms"]["folder"] / result["median_ms"]["tar"], 2)
        result["text_ratio"] = round(result["median_ms"]["text"] / result["median_ms"]["diff"], 2)
        result["folder_within_target"] = result["folder_ratio"] <= 1.5
        if args.json:
            print(json.dumps(result, indent=2))
        else:
            for key, value in result.items():
                print(f"{key}: {value}")
        return 0 if result["folder_within_target"] else 1
    finally:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
