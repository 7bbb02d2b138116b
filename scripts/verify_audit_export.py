#!/usr/bin/env python3
"""Re-check a Stowage audit export offline, with nothing but Python's standard library.

    python3 scripts/verify_audit_export.py audit-20261201-101500-seq1-240.jsonl
    python3 scripts/verify_audit_export.py audit-20261201-101500-seq1-240.csv

For every event it recomputes the SHA-256 of the event's canonical content and compares it with
the event's recorded hash, so an event edited after it was recorded (in the database, or in the
file) is named. Where two exported events are neighbours in the chain (consecutive ``seq``), the
later one's ``prev_hash`` must be the earlier one's ``hash``, so an event removed or reordered
between them is found too. Events of other organizations, or left out by a filter, sit in the
gaps between; the manifest of a JSON Lines export says which part of the chain it covers.

It prints how many events it verified, their time range and the hash of the newest one, and
exits 0; or names the first bad event and exits 1. docs/audit.md describes the format.
"""

from __future__ import annotations

import argparse
import csv
import hashlib
import io
import json
import sys
from pathlib import Path
from typing import Any

# The fields the hash covers, exactly as audit/services.py canonical_content() serialises them.
CANONICAL_FIELDS = (
    "id",
    "timestamp",
    "organization_id",
    "actor_user_id",
    "actor_api_key_id",
    "actor",
    "action",
    "resource",
    "sandbox_id",
    "session_id",
    "details",
    "outcome",
    "error_message",
    "duration_ms",
    "ip",
    "user_agent",
    "request_id",
    "prev_hash",
)
# In a CSV an empty cell of these is null; of the other text fields it is the empty string.
NULLABLE = {"organization_id", "actor_user_id", "actor_api_key_id", "duration_ms", "ip"}
INTEGERS = {"actor_user_id", "duration_ms", "seq"}
csv.field_size_limit(sys.maxsize)


class Broken(Exception):
    pass


def canonical_hash(event: dict[str, Any]) -> str:
    body = {name: event[name] for name in CANONICAL_FIELDS}
    text = json.dumps(body, sort_keys=True, separators=(",", ":"), ensure_ascii=False, default=str)
    return hashlib.sha256(text.encode()).hexdigest()


def _csv_value(name: str, cell: str) -> Any:
    if cell.startswith("'"):
        # The export defuses cells a spreadsheet would run, and marks them with one quote.
        cell = cell[1:]
    if cell == "" and name in NULLABLE:
        return None
    if name in INTEGERS:
        return int(cell)
    if name == "details":
        return json.loads(cell) if cell else {}
    return cell


def read_export(path: Path) -> tuple[dict[str, Any] | None, list[dict[str, Any]]]:
    # newline="": a CSV cell may hold a line break, which must reach the hash as it was.
    with open(path, encoding="utf-8", newline="") as handle:
        text = handle.read()
    if text.lstrip().startswith("{"):
        lines = [json.loads(line) for line in text.splitlines() if line.strip()]
        manifest = lines[0] if lines and lines[0].get("type") == "stowage.audit-export" else None
        return manifest, lines[1:] if manifest else lines
    rows = list(csv.DictReader(io.StringIO(text, newline="")))
    missing = {"seq", "hash", *CANONICAL_FIELDS} - set(rows[0] if rows else CANONICAL_FIELDS)
    if missing:
        raise Broken(f"the CSV lacks the columns {', '.join(sorted(missing))}: export it again from Stowage")
    return None, [{name: _csv_value(name, cell) for name, cell in row.items()} for row in rows]


def verify(manifest: dict[str, Any] | None, events: list[dict[str, Any]]) -> dict[str, Any]:
    events = sorted(events, key=lambda event: event["seq"])
    linked = gaps = 0
    previous = None
    for event in events:
        label = f"event {event['id']} (seq {event['seq']})"
        if canonical_hash(event) != event["hash"]:
            raise Broken(f"{label}: its content does not match its hash (it was edited)")
        if previous is not None:
            if event["seq"] == previous["seq"]:
                raise Broken(f"{label}: the export holds seq {event['seq']} twice")
            if event["seq"] == previous["seq"] + 1:
                if event["prev_hash"] != previous["hash"]:
                    raise Broken(f"{label}: its link to event {previous['id']} is broken (removed or reordered)")
                linked += 1
            else:
                gaps += 1
        previous = event
    if manifest is not None:
        if manifest.get("events") != len(events):
            raise Broken(f"the manifest counts {manifest.get('events')} events, the file holds {len(events)}")
        if events and (manifest.get("first_seq"), manifest.get("last_seq")) != (events[0]["seq"], events[-1]["seq"]):
            raise Broken("the events are not the part of the chain the manifest says they are")
    return {
        "events": len(events),
        "linked": linked,
        "gaps": gaps,
        "first": events[0]["timestamp"] if events else None,
        "last": events[-1]["timestamp"] if events else None,
        "newest_hash": events[-1]["hash"] if events else None,
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Re-check a Stowage audit export (CSV or JSON Lines) offline.")
    parser.add_argument("export", type=Path)
    args = parser.parse_args(argv)
    try:
        manifest, events = read_export(args.export)
        found = verify(manifest, events)
    except (Broken, ValueError, KeyError) as exc:
        print(f"FAILED: {exc}")
        return 1
    if manifest is not None:
        print(f"covers: {manifest.get('covers')}")
        head = manifest.get("chain_head") or {}
        print(f"chain head when exported: seq {head.get('seq')} hash {head.get('hash')}")
    if not found["events"]:
        print("OK: the export holds no events")
        return 0
    print(
        f"OK: {found['events']} events verified, from {found['first']} to {found['last']}; "
        f"{found['linked']} links checked, {found['gaps']} gaps (events not in this export)"
    )
    print(f"newest event's hash: {found['newest_hash']}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
