#!/usr/bin/env python3
"""Re-check a Stowage audit export offline, with nothing but Python's standard library.

    python3 scripts/verify_audit_export.py audit-20261201-101500-seq1-240.jsonl
    python3 scripts/verify_audit_export.py audit-20261201-101500-seq1-240.csv

An export covers one stretch of an organization's chain, from its first event to its last: the
organization's events in full, and every other event of that stretch (one its filters left out,
or, in the shared chain of events recorded before each organization had a chain of its own,
another organization's) as its link alone (``seq``, ``prev_hash``, ``hash``). For every full event this script
recomputes the SHA-256 of its canonical content and compares it with the recorded hash, so an
event edited after it was recorded (in the database, or in the file) is named. Then it requires
the links to run unbroken from the first record to the last, each record's ``prev_hash`` being the
hash of the one before, so an event removed from the database before the export, or from the
file after it, is found; and it requires the file to hold what its manifest (first) and trailer
(last) say, so a file cut short or padded is found too.

It prints how many events it verified, their time range and the hash of the newest record, and
exits 0; or names the first problem and exits 1. docs/audit.md describes the format.
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

# The fields the hash covers, exactly as audit/chain.py canonical_content() serialises them.
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
# Covered by the hash only when set (as audit/chain.py canonical_body() adds them), so that events
# recorded before these fields existed keep their hashes.
OPTIONAL_FIELDS = ("client_request_id", "chain")
MANIFEST = "stowage.audit-export"
TRAILER = "stowage.audit-export-end"
# In a CSV an empty cell of these is null; of the other text fields it is the empty string.
NULLABLE = {"organization_id", "actor_user_id", "actor_api_key_id", "duration_ms", "ip"}
INTEGERS = {"actor_user_id", "duration_ms", "seq"}
csv.field_size_limit(sys.maxsize)


class Broken(Exception):
    pass


def canonical_hash(event: dict[str, Any]) -> str:
    body = {name: event[name] for name in CANONICAL_FIELDS}
    body.update({name: event[name] for name in OPTIONAL_FIELDS if event.get(name)})
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


def _csv_record(row: dict[str, str]) -> dict[str, Any]:
    kind = row.get("record") or ""
    if kind in {"manifest", "trailer"}:
        return json.loads(row["details"])
    if kind == "link":
        return {"seq": int(row["seq"]), "prev_hash": row["prev_hash"], "hash": row["hash"], "record": "link"}
    if kind != "event":
        raise Broken(f"a CSV row is neither an event, a link, the manifest nor the trailer ({kind[:20]!r})")
    return {name: _csv_value(name, cell) for name, cell in row.items() if name != "record"}


def read_export(path: Path) -> tuple[dict[str, Any] | None, list[dict[str, Any]], dict[str, Any] | None]:
    """The manifest, the records (events and links) and the trailer of an export, as found."""
    # newline="": a CSV cell may hold a line break, which must reach the hash as it was.
    with open(path, encoding="utf-8", newline="") as handle:
        text = handle.read()
    if text.lstrip().startswith("{"):
        lines = [json.loads(line) for line in text.splitlines() if line.strip()]
    else:
        rows = list(csv.DictReader(io.StringIO(text, newline="")))
        missing = {"seq", "hash", "record", *CANONICAL_FIELDS} - set(rows[0] if rows else CANONICAL_FIELDS)
        if missing:
            raise Broken(f"the CSV lacks the columns {', '.join(sorted(missing))}: export it again from Stowage")
        lines = [_csv_record(row) for row in rows]
    manifest = lines[0] if lines and lines[0].get("type") == MANIFEST else None
    trailer = lines[-1] if len(lines) > 1 and lines[-1].get("type") == TRAILER else None
    return manifest, lines[1 if manifest else 0 : -1 if trailer else None], trailer


def _check_shape(
    manifest: dict[str, Any] | None, records: list[dict[str, Any]], trailer: dict[str, Any] | None
) -> None:
    if manifest is None:
        raise Broken("the export has no manifest: it is not a Stowage audit export, or its start was cut")
    if manifest.get("version", 1) < 2:
        raise Broken(
            "this export was made by an earlier Stowage, which left out the events between the exported ones, "
            "so removed events cannot be told from others: export it again"
        )
    if trailer is None:
        raise Broken("the export has no trailer: it was cut short")
    events = sum(1 for record in records if record.get("record") != "link")
    if manifest.get("chain_records") != len(records):
        raise Broken(
            f"the manifest counts {manifest.get('chain_records')} events from seq {manifest.get('first_seq')} "
            f"to seq {manifest.get('last_seq')}, the file holds {len(records)}"
        )
    if manifest.get("events") != events:
        raise Broken(f"the manifest counts {manifest.get('events')} exported events, the file holds {events}")
    if records and (manifest.get("first_seq"), manifest.get("last_seq")) != (records[0]["seq"], records[-1]["seq"]):
        raise Broken("the records are not the part of the chain the manifest says they are")


def verify(
    manifest: dict[str, Any] | None, records: list[dict[str, Any]], trailer: dict[str, Any] | None
) -> dict[str, Any]:
    records = sorted(records, key=lambda record: record["seq"])
    _check_shape(manifest, records, trailer)
    previous = None
    events = []
    for record in records:
        is_link = record.get("record") == "link"
        label = f"seq {record['seq']}" if is_link else f"event {record['id']} (seq {record['seq']})"
        if not is_link:
            if canonical_hash(record) != record["hash"]:
                raise Broken(f"{label}: its content does not match its hash (it was edited)")
            events.append(record)
        if previous is not None:
            if record["seq"] == previous["seq"]:
                raise Broken(f"{label}: the export holds seq {record['seq']} twice")
            if record["prev_hash"] != previous["hash"]:
                raise Broken(
                    f"{label}: its link to seq {previous['seq']} is broken "
                    "(an event between them was removed, inserted or reordered)"
                )
        previous = record
    if trailer.get("chain") != "intact":
        first = (trailer.get("breaks") or [{}])[0]
        raise Broken(
            f"the export says the chain was broken when it was made: seq {first.get('seq')}, {first.get('problem')}"
        )
    newest = records[-1]["hash"] if records else None
    if (trailer.get("events"), trailer.get("newest_hash")) != (len(events), newest):
        raise Broken("the trailer does not match the records before it")
    return {
        "events": len(events),
        "records": len(records),
        "links": len(records) - len(events),
        "first": events[0]["timestamp"] if events else None,
        "last": events[-1]["timestamp"] if events else None,
        "first_seq": records[0]["seq"] if records else None,
        "last_seq": records[-1]["seq"] if records else None,
        "newest_hash": newest,
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Re-check a Stowage audit export (CSV or JSON Lines) offline.")
    parser.add_argument("export", type=Path)
    args = parser.parse_args(argv)
    try:
        manifest, records, trailer = read_export(args.export)
        found = verify(manifest, records, trailer)
    except (Broken, ValueError, KeyError, TypeError) as exc:
        print(f"FAILED: {exc}")
        return 1
    print(f"covers: {manifest.get('covers')}")
    head = manifest.get("chain_head") or {}
    print(f"chain head when exported: seq {head.get('seq')} hash {head.get('hash')}")
    if not found["records"]:
        print("OK: the export holds no events")
        return 0
    print(
        f"OK: {found['events']} events verified, from {found['first']} to {found['last']}; the chain runs "
        f"unbroken through all {found['records']} events from seq {found['first_seq']} to seq {found['last_seq']} "
        f"({found['links']} of them by their links alone: other organizations' events, or left out by the filters)"
    )
    print(f"newest event's hash: {found['newest_hash']}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
