from __future__ import annotations

import stat
from typing import Any

from django import template

register = template.Library()


@register.filter
def metadata_items(metadata: Any, limit: int = 3) -> list[tuple[str, str]]:
    """The first ``limit`` key/value pairs of an artifact's metadata, for a compact listing."""
    if not isinstance(metadata, dict):
        return []
    return list(metadata.items())[: int(limit)]


@register.filter
def short_checksum(checksum: str) -> str:
    """``sha256:0a1b2c3d…`` for tables; the full value is on the detail page."""
    algorithm, _, digest = (checksum or "").partition(":")
    return f"{algorithm}:{digest[:12]}…" if digest else checksum


@register.filter
def entry_mode(entry) -> str:
    """A folder entry's mode as ``ls -l`` shows it, e.g. ``-rwxr-xr-x``."""
    kinds = {"directory": stat.S_IFDIR, "symlink": stat.S_IFLNK}
    return stat.filemode(kinds.get(entry.type, stat.S_IFREG) | (entry.mode & 0o7777))
