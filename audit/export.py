"""Exports an auditor can take away and re-check offline (scripts/verify_audit_export.py).

An export covers one stretch of an organization's chain (or the instance's), from its first event
to its last. Each of its events carries every field its hash covers, its hash and the previous
event's hash, and its place in the log (``seq``). Every other event of that stretch (one the
filters left out, or, in the shared chain of earlier events before this chain began, another
organization's event) is there as its link alone: ``seq``, ``prev_hash`` and ``hash``. So
the links run unbroken from the first event to the last, and an event deleted from the database
or from the file breaks them. A manifest opens the export (which stretch, how many events), a
trailer closes it (what the walk found, the breaks it met included); in the CSV, as rows of their
own.
"""

from __future__ import annotations

import csv
import json
from collections.abc import Iterator
from typing import Any

from django.db.models import Count, Max, Min, QuerySet
from django.utils import timezone

from audit.chain import canonical_body, chain_span, chain_start, event_hash, shared_chain
from audit.models import AuditChain, AuditEvent

EXPORT_CHUNK = 2000
FORMAT = "stowage.audit-export"
TRAILER = "stowage.audit-export-end"
# 2: the links of the events between, and a trailer.
FORMAT_VERSION = 2
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
    "record",
    # Covered by the hash when set (an event recorded with a client's X-Request-Id; an event of a
    # chain of its own); empty for the events recorded before the columns existed.
    "client_request_id",
    "chain",
)
# A trailer names this many breaks at most; the first is the one that matters.
MAX_BREAKS = 20
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


def link_record(link: dict[str, Any]) -> dict[str, Any]:
    return {"seq": link["seq"], "prev_hash": link["prev_hash"], "hash": link["hash"], "record": "link"}


class ChainWalk:
    """The stretch of the chain an export covers, walked in chunks: the exported events in full,
    the others as links, and what was wrong on the way."""

    def __init__(self, events: QuerySet[AuditEvent], manifest: dict[str, Any], *, newest_first: bool) -> None:
        self.first_seq, self.last_seq = manifest["first_seq"], manifest["last_seq"]
        self.chain = chain_span(manifest["chain"], manifest["chain_start"]["seq"])
        self.events = events.filter(self.chain).order_by()
        self.newest_first = newest_first
        self.counts = {"events": 0, "links": 0}
        self.breaks: list[dict[str, Any]] = []
        self.newest_hash: str | None = None
        self._previous: dict[str, Any] | None = None

    def records(self) -> Iterator[dict[str, Any]]:
        if self.first_seq is None:
            return
        span = AuditEvent.objects.filter(self.chain, seq__gte=self.first_seq, seq__lte=self.last_seq)
        cursor = None
        while True:
            chunk = span
            if cursor is not None:
                chunk = chunk.filter(seq__lt=cursor) if self.newest_first else chunk.filter(seq__gt=cursor)
            links = list(
                chunk.order_by("-seq" if self.newest_first else "seq").values("seq", "prev_hash", "hash")[:EXPORT_CHUNK]
            )
            if not links:
                return
            seqs = [link["seq"] for link in links]
            full = {event.seq: event for event in self.events.filter(seq__gte=min(seqs), seq__lte=max(seqs))}
            for link in links:
                event = full.get(link["seq"])
                self._check(link, event)
                self.counts["events" if event else "links"] += 1
                yield export_record(event) if event else link_record(link)
            cursor = seqs[-1]

    def _check(self, link: dict[str, Any], event: AuditEvent | None) -> None:
        if event is not None and event_hash(event) != event.hash:
            self._broken(link["seq"], "its content no longer matches its hash (it was edited)", event.id)
        previous, self._previous = self._previous, link
        if self.newest_first:
            self.newest_hash = self.newest_hash or link["hash"]
        else:
            self.newest_hash = link["hash"]
        if previous is None:
            return
        older, newer = (link, previous) if self.newest_first else (previous, link)
        if newer["prev_hash"] != older["hash"]:
            self._broken(
                newer["seq"],
                f"its link to seq {older['seq']} is broken (an event was removed, inserted or reordered there)",
            )

    def _broken(self, seq: int, problem: str, event_id: str | None = None) -> None:
        if len(self.breaks) < MAX_BREAKS:
            self.breaks.append({"seq": seq, "problem": problem, **({"event_id": event_id} if event_id else {})})

    def trailer(self) -> dict[str, Any]:
        return {
            "type": TRAILER,
            "events": self.counts["events"],
            "links": self.counts["links"],
            "first_seq": self.first_seq,
            "last_seq": self.last_seq,
            "newest_hash": self.newest_hash,
            "chain": "broken" if self.breaks else "intact",
            "breaks": self.breaks,
        }


def csv_lines(events: QuerySet[AuditEvent], manifest: dict[str, Any]) -> Iterator[str]:
    """A header, the manifest's row, every record newest first, and the trailer's row."""
    writer = csv.writer(_Echo())
    walk = ChainWalk(events, manifest, newest_first=True)

    def row(record: dict[str, Any]) -> list[Any]:
        return [csv_cell(record.get(column)) for column in EXPORT_COLUMNS]

    yield writer.writerow(EXPORT_COLUMNS)
    yield writer.writerow(row({"record": "manifest", "details": manifest}))
    for record in walk.records():
        yield writer.writerow(row({"record": "event", **record}))
    yield writer.writerow(row({"record": "trailer", "details": walk.trailer()}))


def coverage(events: QuerySet[AuditEvent], *, organization_id: str | None, filters: dict[str, str]) -> dict[str, Any]:
    """Which part of the chain an export holds, said in its manifest."""
    start = chain_start(organization_id)
    chain = chain_span(start.key, start.seq)
    span = (
        events.filter(chain)
        .order_by()
        .aggregate(
            count=Count("seq"), first_seq=Min("seq"), last_seq=Max("seq"), first=Min("timestamp"), last=Max("timestamp")
        )
    )
    # Events a process of an earlier release appended to the shared chain during an upgrade, after
    # this chain began: on neither side of its links, so not in the export (verify_audit checks them).
    outside = events.exclude(chain).count() if start.seq < shared_chain().last_seq else 0
    in_span = 0
    if span["count"]:
        in_span = AuditEvent.objects.filter(chain, seq__gte=span["first_seq"], seq__lte=span["last_seq"]).count()
    head = AuditChain.objects.filter(key=start.key).first()
    whose = f"organization {organization_id}" if organization_id else "the instance security log"
    covers = (
        f"{span['count']} events of {whose}"
        + (f", seq {span['first_seq']} to {span['last_seq']}" if span["count"] else "")
        + (f", matching {json.dumps(filters, sort_keys=True)}" if filters else ", all of them")
        + "."
        + (
            f" Left out: {outside} events an earlier release appended to the shared chain after this chain began."
            if outside
            else ""
        )
    )
    if span["count"] and span["first_seq"] <= start.seq:
        covers += (
            f" Up to seq {start.seq} the chain was shared by every organization: the export holds all"
            f" {in_span} events of its chain from the first to the last, the others by their links alone, so the"
            " links run unbroken end to end."
        )
    elif span["count"]:
        covers += (
            f" The chain is {whose}'s own: the export holds all {in_span} of its events from the first to the last,"
            " those the filters left out by their links alone, so the links run unbroken end to end."
        )
    return {
        "type": FORMAT,
        "version": FORMAT_VERSION,
        "organization_id": organization_id,
        "filters": filters,
        "exported_at": timezone.now().isoformat(),
        "events": span["count"],
        "chain_records": in_span,
        "first_seq": span["first_seq"],
        "last_seq": span["last_seq"],
        "first_timestamp": span["first"].isoformat() if span["first"] else None,
        "last_timestamp": span["last"].isoformat() if span["last"] else None,
        "chain": start.key,
        "chain_start": {"seq": start.seq, "hash": start.hash},
        "outside_chain": outside,
        "chain_head": {
            "seq": head.last_seq if head else start.seq,
            "hash": head.last_hash if head else start.hash,
        },
        "covers": covers,
    }


def jsonl_lines(events: QuerySet[AuditEvent], manifest: dict[str, Any]) -> Iterator[str]:
    """The manifest, every record oldest first, one JSON object a line, and the trailer."""
    walk = ChainWalk(events, manifest, newest_first=False)
    yield json.dumps(manifest, ensure_ascii=False, sort_keys=True) + "\n"
    for record in walk.records():
        yield json.dumps(record, ensure_ascii=False, sort_keys=True) + "\n"
    yield json.dumps(walk.trailer(), ensure_ascii=False, sort_keys=True) + "\n"
