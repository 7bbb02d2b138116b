"""Exports an auditor can take away and re-check offline (scripts/verify_audit_export.py).

Each event carries every field its hash covers, its hash and the previous event's hash, and its
place in the chain (``seq``). The JSON Lines export opens with a manifest saying which part of
the chain it covers; the CSV export carries the same columns, one row an event.
"""

from __future__ import annotations

import csv
import json
from collections.abc import Iterable, Iterator
from typing import Any

from django.db.models import Count, Max, Min, QuerySet
from django.utils import timezone

from audit.models import AuditChainHead, AuditEvent
from audit.services import GENESIS_HASH, canonical_body

EXPORT_CHUNK = 2000
FORMAT = "stowage.audit-export"
FORMAT_VERSION = 1
# The columns every CSV export had, then those that let it be re-checked.
EXPORT_COLUMNS = (
    "id",
    "timestamp",
    "actor",
    "action",
    "outcome",
    "resource",
    "sandbox_id",
    "session_id",
    "ip",
    "user_agent",
    "request_id",
    "duration_ms",
    "error_message",
    "details",
    "organization_id",
    "actor_user_id",
    "actor_api_key_id",
    "seq",
    "prev_hash",
    "hash",
)
# A spreadsheet runs a cell that starts with one of these as a formula; a leading quote is how
# the export marks a cell it defused, so a cell that starts with one is marked too.
_FORMULA_PREFIXES = ("=", "+", "-", "@", "\t", "\r", "'")


class _Echo:
    """A file-like object whose write returns the line, so csv.writer can feed a stream."""

    def write(self, value: str) -> str:
        return value


def csv_cell(value: Any) -> Any:
    """A value as a CSV cell that a spreadsheet shows as text and never runs as a formula."""
    if value is None:
        return ""
    if isinstance(value, bool | int | float):
        return value
    if isinstance(value, dict | list):
        text = json.dumps(value, sort_keys=True, ensure_ascii=False)
    elif hasattr(value, "isoformat"):
        text = value.isoformat()
    else:
        text = str(value)
    if text.startswith(_FORMULA_PREFIXES):
        text = "'" + text
    return text


def export_record(event: AuditEvent) -> dict[str, Any]:
    return {"seq": event.seq, **canonical_body(event), "hash": event.hash}


def csv_lines(events: Iterable[AuditEvent]) -> Iterator[str]:
    writer = csv.writer(_Echo())
    yield writer.writerow(EXPORT_COLUMNS)
    for event in events:
        record = export_record(event)
        yield writer.writerow([csv_cell(record[column]) for column in EXPORT_COLUMNS])


def coverage(events: QuerySet[AuditEvent], *, organization_id: str | None, filters: dict[str, str]) -> dict[str, Any]:
    """Which part of the chain an export holds, said in its manifest."""
    span = events.order_by().aggregate(
        count=Count("seq"), first_seq=Min("seq"), last_seq=Max("seq"), first=Min("timestamp"), last=Max("timestamp")
    )
    head = AuditChainHead.objects.filter(id=1).first()
    whose = f"organization {organization_id}" if organization_id else "the instance security log"
    covers = (
        f"{span['count']} events of {whose}"
        + (f", seq {span['first_seq']} to {span['last_seq']}" if span["count"] else "")
        + (f", matching {json.dumps(filters, sort_keys=True)}" if filters else ", all of them")
        + ". The chain interleaves every organization's events, so an event links to the one before it"
        " in this export only where no other event came between (consecutive seq)."
    )
    return {
        "type": FORMAT,
        "version": FORMAT_VERSION,
        "organization_id": organization_id,
        "filters": filters,
        "exported_at": timezone.now().isoformat(),
        "events": span["count"],
        "first_seq": span["first_seq"],
        "last_seq": span["last_seq"],
        "first_timestamp": span["first"].isoformat() if span["first"] else None,
        "last_timestamp": span["last"].isoformat() if span["last"] else None,
        "chain_head": {
            "seq": head.last_seq if head else 0,
            "hash": head.last_hash if head else GENESIS_HASH,
        },
        "covers": covers,
    }


def jsonl_lines(events: QuerySet[AuditEvent], manifest: dict[str, Any]) -> Iterator[str]:
    """The manifest, then every event oldest first, one JSON object a line."""
    yield json.dumps(manifest, ensure_ascii=False, sort_keys=True) + "\n"
    for event in events.order_by("seq").iterator(chunk_size=EXPORT_CHUNK):
        yield json.dumps(export_record(event), ensure_ascii=False, sort_keys=True) + "\n"
