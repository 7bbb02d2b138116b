"""What the upload page sends: the plain form for browsers without JavaScript, and the pieces of
input its script sends that every upload endpoint reads the same way."""

from __future__ import annotations

from django import forms
from django.template.defaultfilters import filesizeformat

from artifacts.validation import check_metadata
from core.errors import InvalidInput, PayloadTooLarge


class UploadForm(forms.Form):
    """The plain form for browsers without JavaScript: one file, sent as multipart."""

    file = forms.FileField(label="File")
    remote_path = forms.CharField(
        label="Artifact name (remote_path)",
        max_length=1024,
        required=False,
        help_text="Leave empty to use the file's name. Use / to put it in a folder, for example reports/q3.pdf.",
    )


def file_too_large(size: int, limit: int) -> PayloadTooLarge:
    return PayloadTooLarge(
        f"The file is {filesizeformat(size)}, more than the {filesizeformat(limit)} an artifact may be.",
        code="FILE_TOO_LARGE",
        details={"field": "file"},
    )


def browser_content_type(value: str) -> str | None:
    """The browser's idea of the type; None lets the server guess from the name and first bytes."""
    media = value.split(";", 1)[0].strip().lower()
    if media in ("", "application/octet-stream", "multipart/form-data", "application/x-www-form-urlencoded"):
        return None
    return value.strip()


def metadata_from_rows(keys: list[str], values: list[str]) -> dict[str, str]:
    metadata: dict[str, str] = {}
    for key, value in zip(keys, values, strict=False):
        key = key.strip()
        if not key and not value:
            continue
        if not key:
            raise InvalidInput(
                "Every metadata value needs a key.", code="INVALID_METADATA", details={"field": "metadata"}
            )
        metadata[key] = value
    return check_metadata(metadata)
