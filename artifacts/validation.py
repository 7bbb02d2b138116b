"""Checks on what a user names and attaches to an artifact, before anything is stored."""

from __future__ import annotations

import mimetypes
import re
import unicodedata

from django.conf import settings

from core.errors import InvalidInput
from core.text import has_lone_surrogate, parse_json

MAX_REMOTE_PATH_BYTES = 1024
MAX_METADATA_KEYS = 64
MAX_METADATA_KEY = 128
MAX_METADATA_VALUE = 1024
_CONTENT_TYPE = re.compile(
    r"^[A-Za-z0-9][A-Za-z0-9!#$&^_.+-]{0,126}/[A-Za-z0-9][A-Za-z0-9!#$&^_.+-]{0,126}(\s*;\s*[A-Za-z0-9_.-]+=[A-Za-z0-9_.\"-]+)*$"
)


def _has_control(text: str) -> bool:
    return any(unicodedata.category(ch) == "Cc" for ch in text)


def _not_text(text: str) -> bool:
    return _has_control(text) or has_lone_surrogate(text)


def check_remote_path(remote_path: str | None) -> str:
    if remote_path is None or remote_path.strip() == "":
        raise InvalidInput(
            "remote_path must not be empty", code="INVALID_REMOTE_PATH", details={"field": "remote_path"}
        )
    if _not_text(remote_path):
        raise InvalidInput(
            "remote_path must be text without control characters",
            code="INVALID_REMOTE_PATH",
            details={"field": "remote_path"},
        )
    if len(remote_path.encode()) > MAX_REMOTE_PATH_BYTES:
        raise InvalidInput(
            f"remote_path is longer than {MAX_REMOTE_PATH_BYTES} bytes",
            code="INVALID_REMOTE_PATH",
            details={"field": "remote_path"},
        )
    parts = [p for p in remote_path.strip("/").split("/")]
    if any(p in ("", ".", "..") for p in parts):
        raise InvalidInput(
            "remote_path must not contain empty, '.' or '..' segments",
            code="INVALID_REMOTE_PATH",
            details={"field": "remote_path"},
        )
    return "/".join(parts)


def check_metadata(metadata: dict | None) -> dict[str, str]:
    if metadata is None:
        return {}
    if not isinstance(metadata, dict):
        raise InvalidInput(
            "metadata must be an object of string keys to string values",
            code="INVALID_METADATA",
            details={"field": "metadata"},
        )
    if len(metadata) > MAX_METADATA_KEYS:
        raise InvalidInput(
            f"metadata may have at most {MAX_METADATA_KEYS} keys",
            code="INVALID_METADATA",
            details={"field": "metadata"},
        )
    for key, value in metadata.items():
        if not isinstance(key, str) or not isinstance(value, str):
            raise InvalidInput(
                "metadata keys and values must be strings", code="INVALID_METADATA", details={"field": "metadata"}
            )
        if not key or len(key) > MAX_METADATA_KEY or _not_text(key):
            raise InvalidInput(
                f"metadata key {key[:40]!r} must be 1 to {MAX_METADATA_KEY} characters of text without control characters",
                code="INVALID_METADATA",
                details={"field": "metadata"},
            )
        if len(value) > MAX_METADATA_VALUE or "\x00" in value or has_lone_surrogate(value):
            raise InvalidInput(
                f"metadata value of {key[:40]!r} must be at most {MAX_METADATA_VALUE} characters of text without NUL",
                code="INVALID_METADATA",
                details={"field": "metadata"},
            )
    return dict(metadata)


def check_metadata_header(raw: str | None) -> dict[str, str]:
    """The metadata an upload sends in its X-Artifact-Metadata header: a JSON object of strings."""
    if not raw:
        return {}
    try:
        # Headers arrive as Latin-1; the JSON in them is UTF-8 (or ASCII with \u escapes).
        metadata = parse_json(raw.encode("latin-1").decode("utf-8"))
    except (UnicodeError, ValueError):
        raise InvalidInput(
            "X-Artifact-Metadata must be a JSON object of strings",
            code="INVALID_METADATA",
            details={"field": "metadata"},
        ) from None
    return check_metadata(metadata)


def check_expires_in(expires_in: int | None) -> int | None:
    if expires_in is None:
        return None
    high = settings.ARTIFACT_MAX_EXPIRES_IN
    if not 1 <= expires_in <= high:
        raise InvalidInput(f"expires_in must be between 1 and {high} seconds", details={"field": "expires_in"})
    return expires_in


def check_content_type(content_type: str | None) -> str | None:
    if content_type is None or content_type == "":
        return None
    if not _CONTENT_TYPE.match(content_type):
        raise InvalidInput(
            "content_type must be a media type such as 'application/pdf'",
            code="INVALID_CONTENT_TYPE",
            details={"field": "content_type"},
        )
    return content_type


def guess_content_type(name: str, head: bytes = b"") -> str:
    """From the name first, then from the first bytes."""
    guessed, encoding = mimetypes.guess_type(name, strict=False)
    if encoding == "gzip":
        return "application/gzip"
    if guessed:
        return guessed
    for magic, kind in _MAGIC:
        if head.startswith(magic):
            return kind
    if head and _looks_like_text(head):
        stripped = head.lstrip()
        if stripped[:1] in (b"{", b"["):
            return "application/json"
        return "text/plain"
    return "application/octet-stream"


_MAGIC = [
    (b"%PDF-", "application/pdf"),
    (b"\x89PNG\r\n\x1a\n", "image/png"),
    (b"\xff\xd8\xff", "image/jpeg"),
    (b"GIF87a", "image/gif"),
    (b"GIF89a", "image/gif"),
    (b"PK\x03\x04", "application/zip"),
    (b"\x1f\x8b", "application/gzip"),
    (b"PAR1", "application/vnd.apache.parquet"),
    (b"\x7fELF", "application/x-executable"),
    (b"SQLite format 3\x00", "application/vnd.sqlite3"),
]


def _looks_like_text(head: bytes) -> bool:
    if b"\x00" in head:
        return False
    try:
        head.decode("utf-8")
    except UnicodeDecodeError as exc:
        # A multi-byte character cut at the end of the sample is still text.
        return exc.start >= len(head) - 3
    return True


ALIAS_NAME_RULE = "1 to 63 characters: lowercase letters, digits, '.', '_' and '-', starting with a letter or digit"
ALIAS_NAME = re.compile(r"[a-z0-9][a-z0-9._-]{0,62}")
# Never stored: it always names the newest visible version of its path.
LATEST = "latest"


def check_alias_name(name: object) -> str:
    if not isinstance(name, str) or not ALIAS_NAME.fullmatch(name):
        raise InvalidInput(f"An alias name is {ALIAS_NAME_RULE}", code="INVALID_ALIAS", details={"field": "name"})
    if name == LATEST:
        raise InvalidInput(
            "'latest' is reserved: it always names the newest version", code="INVALID_ALIAS", details={"field": "name"}
        )
    return name
