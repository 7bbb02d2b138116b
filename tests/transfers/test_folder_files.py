"""A sandbox folder's files read, hashed and stored a batch at a time (the small ones on one
thread, each large one on a thread of its own): every file's digest is of its bytes, each is
opened link-safely from its directory's fd (a link, FIFO or directory swapped in after the walk
is refused), a file changed since the walk stores nothing, and a failed batch leaves no object
behind."""

from __future__ import annotations

import hashlib
import os
import secrets
from pathlib import Path

import pytest

from artifacts.manifests import ManifestEntry
from artifacts.storage import blob_iter_chunks, blob_storage
from sandboxes.runtime import InvalidPath, LocalRuntime, NotAFile
from transfers.folder_files import SMALL_FILE_BYTES, FileChanged, file_pool, files_read, files_store

ORG = "org_folderfiles"
FILES = {
    "a.txt": b"hello",
    "d/b.txt": b"b" * 4096,
    "d/e/c.bin": os.urandom(SMALL_FILE_BYTES + 12345),  # read in two passes
    "d/empty": b"",
    **{f"many/f{i:03d}": os.urandom(100 + i) for i in range(150)},  # the small files, one run on one thread
}


@pytest.fixture
def tree(tmp_path: Path):
    runtime = LocalRuntime(tmp_path / "root")
    sandbox_id = "t_" + secrets.token_hex(6)
    runtime.create(sandbox_id, env={}, memory_bytes=None, cpus=None)
    top = tmp_path / "root" / sandbox_id / "workspace" / "dist"
    for path, data in FILES.items():
        (top / path).parent.mkdir(parents=True, exist_ok=True)
        (top / path).write_bytes(data)
    yield runtime, sandbox_id, top
    runtime.destroy(sandbox_id)


def entries(**sizes: int) -> list[ManifestEntry]:
    return [
        ManifestEntry(path=path, type="file", size=sizes.get(path, len(data)), sha256="0" * 64)
        for path, data in FILES.items()
    ]


def stored_keys() -> set[str]:
    root = Path(blob_storage().location) / "blobs" / ORG
    return {f"blobs/{ORG}/{name}" for name in os.listdir(root)} if root.exists() else set()


def test_every_file_is_read_with_its_digest_and_stored_as_its_own_bytes(tree):
    runtime, sandbox_id, _top = tree
    with runtime.tree_files(sandbox_id, "/workspace/dist") as files, file_pool() as pool:
        items = files_read(pool, files, "/workspace/dist", entries())
        assert [item.entry.path for item in items] == list(FILES)
        for item in items:
            assert item.entry.sha256 == hashlib.sha256(FILES[item.entry.path]).hexdigest()
        assert items[0].data == b"hello" and items[2].data is None  # the large one is not held
        written = files_store(pool, files, "/workspace/dist", items, ORG)
    assert set(written) == {item.entry.sha256 for item in items}
    for sha, (key, stored) in written.items():
        data = b"".join(blob_iter_chunks(key))
        assert hashlib.sha256(data).hexdigest() == sha == stored.sha256 and stored.size == len(data)


@pytest.mark.parametrize("plant", ["link", "fifo", "dir_link"])
def test_a_link_or_fifo_put_in_a_files_place_after_the_walk_is_refused(tree, tmp_path, plant):
    runtime, sandbox_id, top = tree
    outside = tmp_path / "outside"
    (outside / "e").mkdir(parents=True)
    (outside / "e" / "c.bin").write_bytes(FILES["d/e/c.bin"])
    (outside / "secret").write_bytes(b"hello")
    if plant == "link":
        (top / "a.txt").unlink()
        (top / "a.txt").symlink_to(outside / "secret")
    elif plant == "fifo":
        (top / "a.txt").unlink()
        os.mkfifo(top / "a.txt")
    else:  # a directory on the way swapped for a link to one with the same names
        (top / "d" / "e" / "c.bin").unlink()
        (top / "d" / "e").rmdir()
        (top / "d" / "e").symlink_to(outside / "e")
    expected = NotAFile if plant == "fifo" else InvalidPath
    with runtime.tree_files(sandbox_id, "/workspace/dist") as files, file_pool() as pool, pytest.raises(expected):
        files_read(pool, files, "/workspace/dist", entries())


def test_a_file_changed_since_the_walk_stores_nothing(tree):
    runtime, sandbox_id, top = tree
    with runtime.tree_files(sandbox_id, "/workspace/dist") as files, file_pool() as pool:
        with pytest.raises(FileChanged):
            files_read(pool, files, "/workspace/dist", entries(**{"d/b.txt": 4000}))
        items = files_read(pool, files, "/workspace/dist", entries())
        before = stored_keys()
        # The large file changes between its hash and its store: the batch stores nothing, and
        # what the other thread wrote meanwhile is removed again.
        (top / "d/e/c.bin").write_bytes(os.urandom(SMALL_FILE_BYTES + 12345))
        with pytest.raises(FileChanged):
            files_store(pool, files, "/workspace/dist", items, ORG)
    assert stored_keys() == before
