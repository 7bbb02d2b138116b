"""The instance's SECRET_KEY when none is configured: made once at random and kept under ``var/``.

A key that has ever been published (in this repository's history, in a guide) signs nothing:
anyone could forge a session, a CSRF token or a presigned URL with it.
"""

from __future__ import annotations

import hashlib
import os
import secrets
from pathlib import Path

from django.core.exceptions import ImproperlyConfigured

KEY_FILE_NAME = "secret_key"
# SHA-256 digests, so the keys themselves are not written here a second time: the development
# key earlier versions of Stowage shipped in config/settings.py.
PUBLISHED_KEY_DIGESTS = frozenset({"3e7773a6582f84d0e413a3b915d432310ac03d832da08489a96794a755ea682d"})


# A placeholder in a guide or an example file (the compose file of earlier versions shipped
# "change-me-…" keys) is as public as a key written in the source.
PLACEHOLDER_MARKS = ("change-me", "changeme")


def is_published(key: str) -> bool:
    if key.startswith("django-insecure") or any(mark in key.lower() for mark in PLACEHOLDER_MARKS):
        return True
    return hashlib.sha256(key.encode()).hexdigest() in PUBLISHED_KEY_DIGESTS


def refuse_published(name: str, keys: list[str]) -> None:
    for key in keys:
        if key and is_published(key):
            raise ImproperlyConfigured(
                f"{name} holds a key that has been published and signs nothing here: set a new random one "
                "(python -c 'import secrets; print(secrets.token_urlsafe(64))'), or leave SECRET_KEY unset "
                "to have one made under the var directory."
            )


def instance_secret_key(var_dir: Path) -> str:
    """The key in ``var_dir/secret_key``, made on the first run (mode 0600) and read on every later one.

    Several processes may start at once (web, worker, beat): the first to link its file in
    place wins, and the others read what it wrote.
    """
    path = var_dir / KEY_FILE_NAME
    try:
        return _read(path)
    except FileNotFoundError:
        pass
    var_dir.mkdir(parents=True, exist_ok=True)
    partial = var_dir / f".{KEY_FILE_NAME}.{os.getpid()}.{secrets.token_hex(4)}"
    descriptor = os.open(partial, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    try:
        with os.fdopen(descriptor, "w") as handle:
            handle.write(secrets.token_urlsafe(64) + "\n")
            handle.flush()
            os.fsync(handle.fileno())
        try:
            os.link(partial, path)
        except FileExistsError:
            pass
    finally:
        partial.unlink(missing_ok=True)
    return _read(path)


def _read(path: Path) -> str:
    key = path.read_text().strip()
    if len(key) < 50:
        raise ImproperlyConfigured(f"{path} holds no usable secret key; delete it to have a new one made")
    return key
