"""Keyset pagination: a page ends with a cursor naming its last row, and the next page seeks past
it, so a deep page costs what the first does. Cursors are opaque URL-safe text."""

from __future__ import annotations

import base64
import binascii
import json
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Generic, TypeVar

from django.db.models import Model, Q, QuerySet

from core.errors import InvalidInput
from core.text import lone_surrogate_at, parse_json

Row = TypeVar("Row", bound=Model)


@dataclass(frozen=True)
class KeysetPage(Generic[Row]):
    rows: list[Row]
    next_cursor: str | None


def invalid_cursor() -> InvalidInput:
    return InvalidInput("cursor is not one this list returned", code="INVALID_CURSOR", details={"field": "cursor"})


def _b64(text: str) -> str:
    return base64.urlsafe_b64encode(text.encode()).decode().rstrip("=")


def _unb64(cursor: str) -> str:
    text = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)).decode()
    # A made-up cursor must not carry into a query what the database refuses.
    if "\x00" in text:
        raise ValueError("NUL in a cursor")
    return text


def encode_time_cursor(created_at: datetime, row_id: str) -> str:
    return _b64(f"{created_at.isoformat()}|{row_id}")


def decode_time_cursor(cursor: str) -> tuple[datetime, str]:
    try:
        created, row_id = _unb64(cursor).split("|", 1)
        return datetime.fromisoformat(created), row_id
    except (binascii.Error, ValueError, UnicodeDecodeError):
        raise invalid_cursor() from None


def encode_json_cursor(values: list[Any]) -> str:
    plain = [value.isoformat() if isinstance(value, datetime) else value for value in values]
    return _b64(json.dumps(plain))


def decode_json_cursor(cursor: str) -> list[Any]:
    """The values a cursor of ``encode_json_cursor`` holds; the caller checks their types."""
    try:
        values = parse_json(_unb64(cursor))
    except (binascii.Error, ValueError, UnicodeDecodeError):
        raise invalid_cursor() from None
    if not isinstance(values, list) or lone_surrogate_at(values) is not None:
        raise invalid_cursor()
    return values


def newest_first_page(rows: QuerySet[Row], *, limit: int, cursor: str | None) -> KeysetPage[Row]:
    """Rows ordered by (created_at, id) descending, one page after ``cursor``."""
    if cursor:
        created, row_id = decode_time_cursor(cursor)
        # The redundant created_at__lte bound lets the index seek to the cursor instead of walking to it.
        rows = rows.filter(Q(created_at__lt=created) | Q(created_at=created, id__lt=row_id), created_at__lte=created)
    found = list(rows[: limit + 1])
    last = found[limit - 1] if len(found) > limit else None
    return KeysetPage(found[:limit], encode_time_cursor(last.created_at, last.pk) if last else None)
