"""The host's /etc files that sandboxes see, kept as one directory bound as a whole.

Binding each file on its own costs a mount per file on every command (about 0.2 ms each); a
copy of them all is bound once. The copy lives under ``root/.host-etc/<key>``, where the key
is a hash of each source's inode, size and modification time: a command first checks them
(a few ``stat`` calls), so a changed /etc file (a new CA bundle, /etc/hosts) is in the next
command's copy. Copies are built beside their final name and renamed into place, so
processes sharing ``root`` never see half a copy; one superseded for an hour is removed.

Links inside a copied directory (``/etc/alternatives``, ``/etc/ssl/certs``) stay links, as a
bind shows them; a file that is itself a link (``/etc/localtime``) is copied as what it
points at, as a bind of it would show.
"""

from __future__ import annotations

import hashlib
import logging
import os
import shutil
import tempfile
import threading
import time
from pathlib import Path

logger = logging.getLogger(__name__)

_DIRECTORY = ".host-etc"
SUPERSEDED_KEEP_SECONDS = 3600


class HostEtc:
    """The current copy of ``names`` (paths relative to /etc) under ``root``."""

    def __init__(self, root: Path, names: tuple[str, ...], *, source: str = "/etc") -> None:
        self.base = root / _DIRECTORY
        self.names = names
        self.source = source
        self._lock = threading.Lock()
        self._key: str | None = None
        self._failed_key: str | None = None  # not tried again (nor logged) until /etc changes

    def current(self) -> str | None:
        """The directory to bind as /etc, built if /etc changed; None if it cannot be made."""
        key = self._key_now()
        path = self.base / key
        if key == self._key and path.is_dir():
            return str(path)
        if key == self._failed_key:
            return None
        with self._lock:
            try:
                if not path.is_dir():
                    self._build(path)
                    self._remove_superseded(keep=path)
            except OSError as exc:
                logger.warning("could not copy the host's /etc files for sandboxes (%s); binding them one by one", exc)
                self._failed_key = key
                return None
            self._key = key
        return str(path)

    def sources(self) -> list[str]:
        """The /etc paths that exist on this host, each to be seen as itself."""
        return [name for name in self.names if os.path.exists(os.path.join(self.source, name))]

    def _key_now(self) -> str:
        digest = hashlib.sha256()
        for name in self.names:
            try:
                info = os.stat(os.path.join(self.source, name))
            except OSError:
                digest.update(f"{name}:-\n".encode())
                continue
            digest.update(f"{name}:{info.st_dev}:{info.st_ino}:{info.st_size}:{info.st_mtime_ns}\n".encode())
        return digest.hexdigest()[:24]

    def _build(self, path: Path) -> None:
        self.base.mkdir(mode=0o700, parents=True, exist_ok=True)
        building = Path(tempfile.mkdtemp(prefix=".building-", dir=self.base))
        try:
            for name in self.sources():
                source = os.path.join(self.source, name)
                target = building / name
                target.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
                if os.path.isdir(source):
                    shutil.copytree(source, target, symlinks=True)
                else:
                    shutil.copy2(source, target)
            os.rename(building, path)
        except OSError:
            shutil.rmtree(building, ignore_errors=True)
            if not path.is_dir():  # else another process sharing root renamed its copy first
                raise

    def _remove_superseded(self, keep: Path) -> None:
        """Remove the copies older than one that was made current an hour or more ago."""
        copies = []
        for entry in os.scandir(self.base):
            try:
                copies.append((entry.stat(follow_symlinks=False).st_mtime, entry.path))
            except OSError:
                continue
        copies.sort()
        cutoff = time.time() - SUPERSEDED_KEEP_SECONDS
        for index, (_, copy) in enumerate(copies[:-1]):
            newer_since = copies[index + 1][0]
            if copy != str(keep) and newer_since < cutoff:
                shutil.rmtree(copy, ignore_errors=True)
