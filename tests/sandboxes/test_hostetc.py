"""The host's /etc files a sandbox sees: one copy bound as /etc, kept up to date, never stale."""

from __future__ import annotations

import hashlib
import os
import secrets
import time
from pathlib import Path

import pytest

from sandboxes.runtime import LocalRuntime
from sandboxes.runtime.hostetc import SUPERSEDED_KEEP_SECONDS, HostEtc

NAMES = ("passwd", "alternatives", "ssl/certs", "ssl/openssl.cnf", "localtime", "missing")


@pytest.fixture
def source(tmp_path: Path) -> Path:
    etc = tmp_path / "etc"
    (etc / "alternatives").mkdir(parents=True)
    (etc / "alternatives" / "awk").symlink_to("/usr/bin/mawk")
    (etc / "ssl" / "certs").mkdir(parents=True)
    (etc / "ssl" / "certs" / "bundle.crt").write_text("CERTS v1\n")
    (etc / "ssl" / "certs" / "abcd.0").symlink_to("bundle.crt")
    (etc / "ssl" / "openssl.cnf").write_text("[openssl]\n")
    (etc / "ssl" / "private").mkdir()
    (etc / "ssl" / "private" / "key.pem").write_text("SECRET\n")
    (etc / "passwd").write_text("root:x:0:0:root:/root:/bin/sh\n")
    (tmp_path / "zone").write_text("UTC0\n")
    (etc / "localtime").symlink_to(tmp_path / "zone")
    return etc


def test_the_copy_holds_the_named_files_links_as_a_bind_shows_them(source: Path, tmp_path: Path) -> None:
    copy = Path(HostEtc(tmp_path / "root", NAMES, source=str(source)).current())
    assert (copy / "passwd").read_text() == "root:x:0:0:root:/root:/bin/sh\n"
    # Inside a copied directory a link stays a link; a named file that is a link is its target.
    assert os.readlink(copy / "alternatives" / "awk") == "/usr/bin/mawk"
    assert os.readlink(copy / "ssl" / "certs" / "abcd.0") == "bundle.crt"
    assert not (copy / "localtime").is_symlink() and (copy / "localtime").read_text() == "UTC0\n"
    # Only what is named: not the rest of /etc/ssl, nothing for a name the host does not have.
    assert sorted(os.listdir(copy / "ssl")) == ["certs", "openssl.cnf"]
    assert not (copy / "missing").exists()


def test_a_changed_source_is_in_the_next_copy_and_the_same_sources_reuse_it(source: Path, tmp_path: Path) -> None:
    etc = HostEtc(tmp_path / "root", NAMES, source=str(source))
    first = etc.current()
    assert etc.current() == first
    (source / "ssl" / "certs" / "new.crt").write_text("another CA\n")
    second = etc.current()
    assert second != first and (Path(second) / "ssl" / "certs" / "new.crt").read_text() == "another CA\n"
    (source / "passwd").write_text("root:x:0:0:root:/root:/bin/bash\n")
    third = etc.current()
    assert third not in (first, second) and (Path(third) / "passwd").read_text().endswith("/bin/bash\n")
    # Another process sharing the root finds the copy already made for the same sources.
    assert HostEtc(tmp_path / "root", NAMES, source=str(source)).current() == third


def test_a_copy_removed_from_under_it_is_made_again(source: Path, tmp_path: Path) -> None:
    etc = HostEtc(tmp_path / "root", NAMES, source=str(source))
    copy = Path(etc.current())
    for path in sorted(copy.rglob("*"), reverse=True):
        path.rmdir() if path.is_dir() and not path.is_symlink() else path.unlink()
    copy.rmdir()
    assert etc.current() == str(copy) and (copy / "passwd").is_file()


def test_only_copies_superseded_for_an_hour_are_removed(source: Path, tmp_path: Path) -> None:
    etc = HostEtc(tmp_path / "root", NAMES, source=str(source))
    oldest = Path(etc.current())
    (source / "passwd").write_text("v2\n")
    middle = Path(etc.current())
    assert oldest.is_dir(), "superseded a moment ago: a command may be about to bind it"
    hours_ago = time.time() - SUPERSEDED_KEEP_SECONDS - 60
    os.utime(oldest, (hours_ago - 60, hours_ago - 60))
    os.utime(middle, (hours_ago, hours_ago))
    (source / "passwd").write_text("v3\n")
    newest = Path(etc.current())
    assert not oldest.exists()
    assert middle.is_dir(), "superseded only now"
    assert (newest / "passwd").read_text() == "v3\n"


def test_without_a_copy_it_says_so(source: Path, tmp_path: Path) -> None:
    root = tmp_path / "root"
    root.mkdir()
    (root / ".host-etc").write_text("not a directory")
    etc = HostEtc(root, NAMES, source=str(source))
    assert etc.current() is None
    assert etc.sources() == ["passwd", "alternatives", "ssl/certs", "ssl/openssl.cnf", "localtime"]


def _sha(path: str) -> str:
    return hashlib.sha256(Path(path).read_bytes()).hexdigest()


@pytest.mark.parametrize("copied", [True, False], ids=["one copy", "file by file"])
def test_a_sandbox_sees_the_hosts_etc_files_read_only(tmp_path: Path, copied: bool) -> None:
    root = tmp_path / "root"
    root.mkdir()
    if not copied:
        (root / ".host-etc").write_text("not a directory")  # the copy cannot be made: bound one by one
    runtime = LocalRuntime(root)
    sid = "e_" + secrets.token_hex(4)
    runtime.create(sid, env={}, memory_bytes=None, cpus=None)
    try:
        seen = runtime.execute(
            sid,
            "sha256sum /etc/passwd /etc/ld.so.cache /etc/hosts | cut -d' ' -f1; ls /etc/alternatives | wc -l; "
            "touch /etc/x 2>/dev/null && echo WRITABLE; test -e /etc/ssl/private && echo PRIVATE; true",
            timeout_s=10,
        )
        assert seen.exit_code == 0, seen.stderr
        lines = seen.stdout.split()
        assert lines[:3] == [_sha("/etc/passwd"), _sha("/etc/ld.so.cache"), _sha("/etc/hosts")]
        assert int(lines[3]) == len(os.listdir("/etc/alternatives"))
        assert lines[4:] == []
        assert (root / ".host-etc").is_dir() == copied
    finally:
        runtime.destroy(sid)
