"""What every API operation shares in its schema: the error body and the answers that carry it,
and strict numbers for request bodies.

Each operation declares the errors it can answer (``response={200: Out, **errors(404, 409)}``),
so the OpenAPI schema tells clients, and the fuzzing pass checks, every status it may see.
"""

from __future__ import annotations

import re
from datetime import datetime
from typing import Annotated, Any

from ninja import Schema
from pydantic import BeforeValidator, Field, StrictInt


class ErrorDetail(Schema):
    code: str = Field(..., description="stable, for programs: VALIDATION_ERROR, NOT_FOUND, ...")
    message: str = Field(..., description="for people")
    request_id: str = Field(..., description="also in the X-Request-Id header and the server's logs")
    details: dict[str, Any]


class ErrorOut(Schema):
    error: ErrorDetail


# Every operation behind an API key: a request that does not parse or validate, a missing or
# wrong key, a key without the scope, and the unexpected.
COMMON = (400, 401, 403, 500)
# A request with a JSON body: past settings.API_MAX_BODY_BYTES it is refused unread.
BODY = (413,)
# Work done by a sandbox's worker: the queue is down (503 BROKER_UNAVAILABLE), no answer in time
# (504), the worker's host lacks isolation (503), its disk is full (507).
WORKER = (503, 504, 507)
# Work on stored blobs: the object store failed (502) or is full (507).
STORAGE = (502, 507)


def errors(*statuses: int | tuple[int, ...]) -> dict[int, type[ErrorOut]]:
    """``{status: ErrorOut}`` for the common statuses and the ones named."""
    wanted = set(COMMON)
    for status in statuses:
        wanted.update(status if isinstance(status, tuple) else (status,))
    return dict.fromkeys(sorted(wanted), ErrorOut)


def strict_int(low: int, high: int) -> Any:
    """A JSON integer, documented as ``low`` to ``high``; the service checks the range, so that
    its message names it. Strict: `true` or "10" is a mistake to report, not a number to guess
    at (pydantic would read `true` as 1). Query parameters stay lax: they arrive as text."""
    return Annotated[StrictInt, Field(json_schema_extra={"minimum": low, "maximum": high})]


_ISO_DATE = re.compile(r"^[0-9]{4}-[0-9]{2}-[0-9]{2}")


def _iso_8601(value: Any) -> Any:
    # pydantic would also read a bare number as a Unix time, which the schema does not offer.
    if isinstance(value, str) and not _ISO_DATE.match(value):
        raise ValueError("expected an ISO 8601 date and time, such as 2025-01-31T12:00:00Z")
    return value


IsoTime = Annotated[datetime, BeforeValidator(_iso_8601)]
