from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from django.db import connection
from django.urls import reverse

from audit.models import AuditEvent
from audit.services import audit_record, audit_verify_chain
from core.actor import Actor
from tests.factories import make_shared_chain_events

SCRIPT = Path(__file__).resolve().parents[2] / "scripts" / "verify_audit_export.py"


def record(org_id: str, n: int, **fields) -> list[AuditEvent]:
    actor = Actor(organization_id=org_id, label=fields.pop("actor", "agent"), ip="203.0.113.9")
    return [
        audit_record(
            actor=actor, action=fields.get("action", "file.read"), resource=f"r{i}", details={"i": i, "note": "a,b\n'c"}
        )
        for i in range(n)
    ]


def download(client, name: str, params: dict | None = None) -> bytes:
    response = client.get(reverse(name), params or {})
    assert response.status_code == 200
    return b"".join(response.streaming_content)


def jsonl_parts(body: bytes) -> tuple[dict, list[dict], dict]:
    """The manifest, the exported events and the trailer; the links between are left out."""
    manifest, *records, trailer = [json.loads(line) for line in body.decode().splitlines()]
    return manifest, [record for record in records if record.get("record") != "link"], trailer


def check(tmp_path: Path, body: bytes, suffix: str) -> subprocess.CompletedProcess:
    path = tmp_path / f"export.{suffix}"
    path.write_bytes(body)
    # Run as an auditor would: the machine's Python, nothing of Stowage importable.
    return subprocess.run(
        [sys.executable, "-I", str(SCRIPT), str(path)], capture_output=True, text=True, timeout=60, cwd=tmp_path
    )


def test_a_jsonl_export_is_verified_offline_and_says_what_it_covers(dashboard, stranger, tmp_path):
    record(dashboard.org_id, 4)
    record(stranger.org_id, 2)
    record(dashboard.org_id, 3, action="artifact.upload")
    body = download(dashboard.admin, "audit-export-jsonl")
    manifest, events, _trailer = jsonl_parts(body)
    assert manifest["type"] == "stowage.audit-export" and manifest["organization_id"] == dashboard.org_id
    assert manifest["events"] == len(events) and "seq" in manifest["covers"]
    assert all({"hash", "prev_hash", "seq"} <= set(event) for event in events)
    assert {event["organization_id"] for event in events} == {dashboard.org_id}
    result = check(tmp_path, body, "jsonl")
    assert result.returncode == 0, result.stdout + result.stderr
    assert f"OK: {len(events)} events verified" in result.stdout
    assert " 0 gaps" not in result.stdout, "the other organization's events sit between"


def test_an_edit_in_the_database_is_detected_by_the_offline_check(dashboard, tmp_path):
    events = record(dashboard.org_id, 5)
    with connection.cursor() as cursor:
        cursor.execute("UPDATE audit_auditevent SET actor = %s WHERE id = %s", ["someone else", events[2].id])
    for name, suffix in (("audit-export-jsonl", "jsonl"), ("audit-export", "csv")):
        result = check(tmp_path, download(dashboard.admin, name), suffix)
        assert result.returncode == 1, result.stdout
        assert events[2].id in result.stdout and "edited" in result.stdout


def test_an_edit_of_the_file_is_detected(dashboard, tmp_path):
    events = record(dashboard.org_id, 3)
    body = download(dashboard.admin, "audit-export-jsonl").decode().replace('"r1"', '"r9"')
    result = check(tmp_path, body.encode(), "jsonl")
    assert result.returncode == 1 and events[1].id in result.stdout


def test_an_event_removed_from_the_file_is_detected(dashboard, tmp_path):
    record(dashboard.org_id, 4)
    lines = download(dashboard.admin, "audit-export-jsonl").decode().splitlines(keepends=True)
    result = check(tmp_path, "".join(lines[:2] + lines[3:]).encode(), "jsonl")
    assert result.returncode == 1 and "manifest" in result.stdout


def test_a_csv_export_with_formulas_and_line_breaks_is_verified_offline(dashboard, tmp_path):
    record(dashboard.org_id, 2, actor="=HYPERLINK(1)")
    record(dashboard.org_id, 2, actor="'quoted")
    result = check(tmp_path, download(dashboard.admin, "audit-export"), "csv")
    assert result.returncode == 0, result.stdout + result.stderr


def test_a_filtered_export_says_which_part_of_the_chain_it_covers(dashboard, tmp_path):
    record(dashboard.org_id, 3, action="artifact.upload")
    record(dashboard.org_id, 3, action="file.read")
    response = dashboard.admin.get(reverse("audit-export-jsonl"), {"action": "artifact."})
    body = b"".join(response.streaming_content)
    manifest, events, _trailer = jsonl_parts(body)
    assert {event["action"] for event in events} == {"artifact.upload"}
    assert manifest["filters"] == {"action": "artifact."} and "artifact." in manifest["covers"]
    assert f"seq{manifest['first_seq']}-{manifest['last_seq']}" in response["Content-Disposition"]
    assert check(tmp_path, body, "jsonl").returncode == 0


def test_the_action_filter_takes_a_prefix(dashboard):
    record(dashboard.org_id, 1, action="artifact.upload")
    record(dashboard.org_id, 1, action="artifact.delete")
    record(dashboard.org_id, 1, action="file.read")
    response = dashboard.admin.get(reverse("audit-list"), {"action": "artifact."})
    page = response.content.decode()
    assert "artifact.upload" in page and "artifact.delete" in page and "file.read</td>" not in page
    api = dashboard.owner  # the API filter reads the same way
    assert api.get(reverse("audit-list"), {"action": "artifact.*"}).status_code == 200


def test_resources_show_as_links_with_names(dashboard, owner):
    put = owner.client.put(
        "/api/v1/artifacts?remote_path=reports/q3.csv", b"a,b\n", content_type="text/csv", headers=owner.headers()
    )
    artifact_id = put.json()["id"]
    page = dashboard.admin.get(reverse("audit-list")).content.decode()
    assert f'<a href="{reverse("artifact-detail", args=[artifact_id])}">reports/q3.csv</a>' in page
    assert ">bootstrap</a>" in page, "the bootstrap key by its name"


def test_the_chain_check_reports_its_count_time_range_and_head(dashboard, capsys):
    events = record(dashboard.org_id, 3)
    report = audit_verify_chain(organization_id=dashboard.org_id)
    assert report.ok and report.head_hash == events[-1].hash
    assert report.checked >= 3 and report.organization_checked >= 3
    assert report.first_timestamp <= events[0].timestamp and report.last_timestamp == events[-1].timestamp
    fragment = dashboard.admin.post(reverse("audit-verify"), HTTP_HX_REQUEST="true").content.decode()
    assert events[-1].hash in fragment and "events" in fragment
    from django.core.management import call_command

    call_command("verify_audit")
    out = capsys.readouterr().out
    assert events[-1].hash in out and "events verified, from" in out


def test_the_instance_security_log_is_for_staff(owner, stranger, client, refusal_counters):
    from django.contrib.auth import get_user_model
    from django.test import Client

    client.get("/api/v1/sandboxes", headers={"Authorization": "ApiKey stow_nonsense"})
    staff, other = Client(), Client()
    staff.force_login(get_user_model().objects.get(username=owner.username))
    other.force_login(get_user_model().objects.get(username=stranger.username))
    page = staff.get(reverse("audit-instance-list")).content.decode()
    assert "auth.api_key" in page and "no such API key" in page
    assert other.get(reverse("audit-instance-list")).status_code == 404
    assert other.get(reverse("audit-instance-export-jsonl")).status_code == 404
    body = b"".join(staff.get(reverse("audit-instance-export-jsonl")).streaming_content).decode()
    assert json.loads(body.splitlines()[0])["organization_id"] is None


# --- events removed before or after the export ---------------------------------------------------


def _delete_event(event: AuditEvent) -> None:
    with connection.cursor() as cursor:
        cursor.execute("DELETE FROM audit_auditevent WHERE seq = %s", [event.seq])


def test_an_event_deleted_in_the_database_before_the_export_is_detected(dashboard, stranger, tmp_path):
    """Guards the finding that the offline check took every missing seq for another organization's
    event, so an event deleted before the export passed."""
    ours = record(dashboard.org_id, 3)
    theirs = record(stranger.org_id, 1)
    record(dashboard.org_id, 2)
    # Another organization's chain is not this one's: its events are not in the export at all.
    _delete_event(theirs[0])
    assert check(tmp_path, download(dashboard.admin, "audit-export-jsonl"), "jsonl").returncode == 0
    _delete_event(ours[1])
    for name, suffix in (("audit-export-jsonl", "jsonl"), ("audit-export", "csv")):
        result = check(tmp_path, download(dashboard.admin, name), suffix)
        assert result.returncode == 1, result.stdout
        assert f"link to seq {ours[0].seq} is broken" in result.stdout
    _manifest, _events, trailer = jsonl_parts(download(dashboard.admin, "audit-export-jsonl"))
    assert trailer["chain"] == "broken" and trailer["breaks"][0]["seq"] == ours[2].seq


def test_an_export_spanning_the_shared_chain_runs_unbroken_into_the_own_chain(dashboard, stranger, tmp_path):
    shared = make_shared_chain_events([dashboard.org_id, stranger.org_id, dashboard.org_id, stranger.org_id])
    record(dashboard.org_id, 2)
    record(stranger.org_id, 2)
    manifest, _events, trailer = jsonl_parts(download(dashboard.admin, "audit-export-jsonl"))
    assert manifest["chain_start"] == {"seq": shared[-1].seq, "hash": shared[-1].hash}
    assert manifest["chain"] == dashboard.org_id
    # Of the shared chain, the other organization's events are links; after it, only this one's own.
    assert manifest["chain_records"] == 4 + 3 and manifest["events"] == 2 + 3
    assert trailer["chain"] == "intact"
    assert check(tmp_path, download(dashboard.admin, "audit-export"), "csv").returncode == 0
    # An event of another organization deleted from the shared chain is still found.
    _delete_event(shared[1])
    result = check(tmp_path, download(dashboard.admin, "audit-export-jsonl"), "jsonl")
    assert result.returncode == 1 and f"link to seq {shared[0].seq} is broken" in result.stdout


def test_a_row_removed_from_the_csv_is_detected(dashboard, tmp_path):
    """Guards the finding that the CSV, which had no manifest, lost rows unnoticed."""
    events = record(dashboard.org_id, 4)
    lines = download(dashboard.admin, "audit-export").decode().splitlines(keepends=True)
    kept = [line for line in lines if events[1].id not in line]
    assert len(kept) == len(lines) - 1
    result = check(tmp_path, "".join(kept).encode(), "csv")
    assert result.returncode == 1 and "manifest" in result.stdout


def test_an_export_cut_short_is_detected(dashboard, tmp_path):
    record(dashboard.org_id, 3)
    for name, suffix in (("audit-export-jsonl", "jsonl"), ("audit-export", "csv")):
        lines = download(dashboard.admin, name).decode().splitlines(keepends=True)
        result = check(tmp_path, "".join(lines[:-1]).encode(), suffix)
        assert result.returncode == 1 and "cut short" in result.stdout, result.stdout


def test_the_export_carries_the_links_of_the_events_between(dashboard, stranger, tmp_path):
    record(dashboard.org_id, 1)
    left_out = record(dashboard.org_id, 2, action="file.write")
    record(stranger.org_id, 2, actor="globex-secret-actor")
    record(dashboard.org_id, 1)
    body = download(dashboard.admin, "audit-export-jsonl", {"action": "file.read"})
    links = [json.loads(line) for line in body.decode().splitlines() if '"record": "link"' in line]
    # The events the filters left out are links; another organization's chain is not in it at all.
    assert [(link["seq"], link["hash"]) for link in links] == [(event.seq, event.hash) for event in left_out]
    assert set(links[-1]) == {"seq", "prev_hash", "hash", "record"}
    assert b"globex-secret-actor" not in body and stranger.org_id.encode() not in body
    result = check(tmp_path, body, "jsonl")
    assert result.returncode == 0 and "by their links alone" in result.stdout, result.stdout


def test_events_an_earlier_release_appends_during_an_upgrade_keep_every_export_whole(dashboard, stranger, tmp_path):
    make_shared_chain_events([dashboard.org_id, stranger.org_id])
    ours = record(dashboard.org_id, 2)
    # A process of the earlier release, still running, appends to the shared chain meanwhile.
    late = make_shared_chain_events([dashboard.org_id, None], fresh=False)
    record(dashboard.org_id, 1)
    assert audit_verify_chain().ok
    body = download(dashboard.admin, "audit-export-jsonl")
    manifest, events, trailer = jsonl_parts(body)
    assert trailer["chain"] == "intact" and manifest["chain_start"]["seq"] < ours[0].seq < late[0].seq
    # The late event of the shared chain is no part of this organization's chain.
    assert late[0].id not in {event["id"] for event in events}
    assert manifest["outside_chain"] == 1 and "Left out: 1 events" in manifest["covers"]
    assert check(tmp_path, body, "jsonl").returncode == 0


def test_an_event_with_a_client_request_id_checks_offline(dashboard, tmp_path):
    actor = Actor(organization_id=dashboard.org_id, label="agent", client_request_id="client-req-7")
    audit_record(actor=actor, action="file.read", resource="with a client id")
    for name, suffix in (("audit-export-jsonl", "jsonl"), ("audit-export", "csv")):
        body = download(dashboard.admin, name)
        assert b"client-req-7" in body
        result = check(tmp_path, body, suffix)
        assert result.returncode == 0, result.stdout
