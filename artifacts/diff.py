"""Comparing two artifacts (usually two versions of one path): what changed in their fields and
metadata, a unified diff of text files within a bound, and the entries a folder gained, lost or
changed. Reads only; both artifacts come from the caller's organization-scoped selector."""

from __future__ import annotations

import difflib
from dataclasses import dataclass, field
from typing import Any

from django.conf import settings

from artifacts.entries import FolderEntry, folder_entries
from artifacts.models import Artifact
from artifacts.storage import BlobError, blob_iter_chunks

COMPARED_FIELDS = ("remote_path", "version", "kind", "content_type", "size", "checksum", "expires_at")


@dataclass(frozen=True)
class FieldChange:
    name: str
    before: Any
    after: Any


@dataclass
class MetadataChanges:
    added: dict[str, str] = field(default_factory=dict)
    removed: dict[str, str] = field(default_factory=dict)
    changed: dict[str, tuple[str, str]] = field(default_factory=dict)

    def __bool__(self) -> bool:
        return bool(self.added or self.removed or self.changed)


@dataclass
class TextDiff:
    # "identical", "shown", "too_large", "binary", "unavailable" (the bytes could not be read)
    status: str
    text: str = ""
    truncated: bool = False

    @property
    def lines(self) -> list[str]:
        return self.text.splitlines()


@dataclass
class EntryChanges:
    added: list[FolderEntry] = field(default_factory=list)
    removed: list[FolderEntry] = field(default_factory=list)
    changed: list[tuple[FolderEntry, FolderEntry]] = field(default_factory=list)
    complete: bool = True
    reason: str = ""


@dataclass
class ArtifactDiff:
    """``against`` is the base (before), ``artifact`` the one compared with it (after)."""

    artifact: Artifact
    against: Artifact
    fields: list[FieldChange]
    metadata: MetadataChanges
    text: TextDiff | None
    entries: EntryChanges | None

    @property
    def identical(self) -> bool:
        return not self.fields or [change.name for change in self.fields] == ["version"]


def _is_folder(artifact: Artifact) -> bool:
    """A folder artifact (a manifest of entries), or a folder an earlier release stored as one archive."""
    return artifact.is_folder or artifact.is_archive


def _kind(artifact: Artifact) -> str:
    return "folder" if _is_folder(artifact) else "file"


def _value(artifact: Artifact, name: str) -> Any:
    return _kind(artifact) if name == "kind" else getattr(artifact, name)


def metadata_changes(before: dict[str, str], after: dict[str, str]) -> MetadataChanges:
    changes = MetadataChanges()
    for key in sorted(before.keys() | after.keys()):
        if key not in after:
            changes.removed[key] = before[key]
        elif key not in before:
            changes.added[key] = after[key]
        elif before[key] != after[key]:
            changes.changed[key] = (before[key], after[key])
    return changes


def _read_text(artifact: Artifact) -> str | None:
    data = b"".join(blob_iter_chunks(artifact.content_key, length=settings.DIFF_TEXT_MAX_BYTES))
    if b"\x00" in data:
        return None
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError:
        return None


def text_diff(before: Artifact, after: Artifact) -> TextDiff:
    if before.checksum == after.checksum:
        return TextDiff("identical")
    if max(before.size, after.size) > settings.DIFF_TEXT_MAX_BYTES:
        return TextDiff("too_large")
    try:
        old, new = _read_text(before), _read_text(after)
    except (BlobError, OSError):
        return TextDiff("unavailable")
    if old is None or new is None:
        return TextDiff("binary")
    lines: list[str] = []
    truncated = False
    for line in difflib.unified_diff(
        old.splitlines(),
        new.splitlines(),
        fromfile=f"{before.remote_path} (v{before.version})",
        tofile=f"{after.remote_path} (v{after.version})",
        lineterm="",
    ):
        if len(lines) >= settings.DIFF_MAX_LINES:
            truncated = True
            break
        lines.append(line)
    return TextDiff("shown", "\n".join(lines), truncated)


def entry_changes(before: Artifact, after: Artifact) -> EntryChanges | None:
    if _is_folder(before) and _is_folder(after) and before.checksum == after.checksum:
        return EntryChanges()
    old, new = folder_entries(before), folder_entries(after)
    if old is None and new is None:
        return None
    old_entries = {entry.path: entry for entry in old.entries} if old else {}
    new_entries = {entry.path: entry for entry in new.entries} if new else {}
    changes = EntryChanges(
        complete=bool((old is None or old.complete) and (new is None or new.complete)),
        reason=" ".join(dict.fromkeys(listing.reason for listing in (old, new) if listing and listing.reason)),
    )
    for path in sorted(old_entries.keys() | new_entries.keys()):
        if path not in new_entries:
            changes.removed.append(old_entries[path])
        elif path not in old_entries:
            changes.added.append(new_entries[path])
        elif not old_entries[path].same_as(new_entries[path]):
            changes.changed.append((old_entries[path], new_entries[path]))
    return changes


def artifact_diff(*, artifact: Artifact, against: Artifact) -> ArtifactDiff:
    fields = [
        FieldChange(name, _value(against, name), _value(artifact, name))
        for name in COMPARED_FIELDS
        if _value(against, name) != _value(artifact, name)
    ]
    both_files = not _is_folder(artifact) and not _is_folder(against)
    return ArtifactDiff(
        artifact=artifact,
        against=against,
        fields=fields,
        metadata=metadata_changes(against.metadata or {}, artifact.metadata or {}),
        text=text_diff(against, artifact) if both_files else None,
        entries=None if both_files else entry_changes(against, artifact),
    )
