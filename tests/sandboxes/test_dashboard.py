from __future__ import annotations

import base64
import re
import time
from datetime import timedelta
from html import unescape

import pytest
from django.conf import settings
from django.urls import reverse
from django.utils import timezone

from artifacts.models import Artifact, ArtifactState
from audit.models import AuditEvent
from audit.services import audit_record
from core.actor import Actor
from sandboxes import files as sandbox_files
from sandboxes import services as sandbox_services
from sandboxes.models import Sandbox, SandboxStatus
from tests.factories import make_artifact, make_sandbox, make_transfer
from transfers.models import Transfer, TransferState

HTMX = {"HTTP_HX_REQUEST": "true"}

# Session, user, membership (org_view), one query for the page of sandboxes with their artifact
# counts, and the org switcher's memberships (full page only).
SANDBOX_LIST_QUERIES = 5
SANDBOX_FRAGMENT_QUERIES = 4


@pytest.fixture(autouse=True)
def fake_workspace(request, monkeypatch):
    """Without the worker, a running sandbox's workspace holds one folder and one file.

    Tests marked ``worker`` list real workspaces through the real worker instead.
    """
    if request.node.get_closest_marker("worker"):
        return
    modified = (timezone.now() - timedelta(hours=2)).isoformat()

    def list_files(*, actor, sandbox, path, recursive):
        sandbox_services.require_running(sandbox)
        return [
            {"name": "readme.txt", "path": f"{path}/readme.txt", "type": "file", "size": 5120, "modified_at": modified},
            {"name": "out", "path": f"{path}/out", "type": "directory", "size": 4096, "modified_at": modified},
        ]

    monkeypatch.setattr(sandbox_files, "sandbox_list_files", list_files)


def hx_get(client, url: str, *, target: str | None = None, **params):
    headers = dict(HTMX)
    if target:
        headers["HTTP_HX_TARGET"] = target
    return client.get(url, params, **headers)


# --- access --------------------------------------------------------------------------------------


def test_anonymous_visitors_are_sent_to_sign_in(dashboard):
    sandbox = make_sandbox(dashboard.org_id)
    for url in (reverse("sandbox-list"), reverse("sandbox-detail", args=[sandbox.id])):
        response = dashboard.anonymous.get(url)
        assert response.status_code == 302
        assert response["Location"].startswith(reverse("login"))
    for name in ("sandbox-save", "sandbox-bring-in", "sandbox-stop", "sandbox-extend"):
        response = dashboard.anonymous.post(reverse(name, args=[sandbox.id]), {"path": "/workspace/a", "seconds": 60})
        assert response.status_code == 302
        assert response["Location"].startswith(reverse("login"))
    assert not Transfer.objects.exists()


@pytest.mark.parametrize("role", ["owner", "admin", "member", "viewer"])
def test_every_role_reads_the_list_and_the_detail(dashboard, role):
    sandbox = make_sandbox(dashboard.org_id, status=SandboxStatus.TERMINATED)
    client = dashboard.by_role()[role]
    listing = client.get(reverse("sandbox-list"))
    assert listing.status_code == 200
    assert sandbox.id.encode() in listing.content
    detail = client.get(reverse("sandbox-detail", args=[sandbox.id]))
    assert detail.status_code == 200
    assert sandbox.id.encode() in detail.content


def test_a_stranger_never_sees_another_organizations_sandboxes(dashboard, stranger):
    ours = make_sandbox(dashboard.org_id)
    theirs = make_sandbox(stranger.org_id)
    listing = dashboard.stranger.get(reverse("sandbox-list"))
    assert listing.status_code == 200
    assert theirs.id.encode() in listing.content
    assert ours.id.encode() not in listing.content
    assert dashboard.stranger.get(reverse("sandbox-detail", args=[ours.id])).status_code == 404
    assert (
        hx_get(dashboard.stranger, reverse("sandbox-detail", args=[ours.id]), target="sandbox-status").status_code
        == 404
    )
    for name in ("sandbox-save", "sandbox-bring-in", "sandbox-stop", "sandbox-extend"):
        assert (
            dashboard.stranger.post(reverse(name, args=[ours.id]), {"path": "/workspace/a", "seconds": 60}).status_code
            == 404
        )
    ours.refresh_from_db()
    assert ours.status == SandboxStatus.RUNNING
    assert not Transfer.objects.exists()


def test_an_unknown_sandbox_is_404(dashboard):
    assert dashboard.owner.get(reverse("sandbox-detail", args=["sbx_nope"])).status_code == 404


def test_a_viewer_cannot_change_anything(dashboard):
    sandbox = make_sandbox(dashboard.org_id)
    artifact = make_artifact(dashboard.org_id, None, "data.csv")
    expires = sandbox.expires_at
    viewer = dashboard.viewer
    assert viewer.post(reverse("sandbox-save", args=[sandbox.id]), {"path": "/workspace/a"}).status_code == 404
    assert (
        viewer.post(
            reverse("sandbox-bring-in", args=[sandbox.id]), {"artifact": artifact.id, "target_path": "/workspace/"}
        ).status_code
        == 404
    )
    assert viewer.post(reverse("sandbox-stop", args=[sandbox.id])).status_code == 404
    assert viewer.post(reverse("sandbox-extend", args=[sandbox.id]), {"seconds": 60}).status_code == 404
    sandbox.refresh_from_db()
    assert (sandbox.status, sandbox.expires_at) == (SandboxStatus.RUNNING, expires)
    assert not Transfer.objects.exists()
    page = viewer.get(reverse("sandbox-detail", args=[sandbox.id])).content.decode()
    assert reverse("sandbox-stop", args=[sandbox.id]) not in page
    assert reverse("sandbox-bring-in", args=[sandbox.id]) not in page


def test_actions_only_accept_post(dashboard):
    sandbox = make_sandbox(dashboard.org_id)
    for name in ("sandbox-save", "sandbox-bring-in", "sandbox-stop", "sandbox-extend"):
        assert dashboard.owner.get(reverse(name, args=[sandbox.id])).status_code == 405


# --- list ----------------------------------------------------------------------------------------


def test_the_list_shows_status_times_and_artifact_counts(dashboard):
    busy = make_sandbox(dashboard.org_id, minutes_ago=5)
    idle = make_sandbox(dashboard.org_id, status=SandboxStatus.TERMINATED, minutes_ago=10, stopped_at=timezone.now())
    for index in range(3):
        make_artifact(dashboard.org_id, busy, f"out/{index}.txt")
    make_artifact(dashboard.org_id, busy, "out/pending.txt", state=ArtifactState.PENDING)
    page = dashboard.owner.get(reverse("sandbox-list")).content.decode()
    assert 'class="badge badge-running"' in page and 'class="badge badge-terminated"' in page
    rows = {
        m.group(1): m.group(0)
        for m in re.finditer(r'<tr>\s*<td[^>]*>\s*<a class="mono" href="/sandboxes/([^/]+)/">.*?</tr>', page, re.DOTALL)
    }
    assert re.search(r'<td data-label="Artifacts" class="num">3</td>', rows[busy.id])
    assert re.search(r'<td data-label="Artifacts" class="num">0</td>', rows[idle.id])
    assert re.search(r"5\sminutes ago", rows[busy.id])
    assert "stopped" in rows[idle.id]
    assert page.index(busy.id) < page.index(idle.id), "newest first"


def test_the_list_filters_by_status_and_session(dashboard):
    running = make_sandbox(dashboard.org_id, session_id="ses_alpha")
    stopped = make_sandbox(dashboard.org_id, status=SandboxStatus.TERMINATED, session_id="ses_alpha")
    other = make_sandbox(dashboard.org_id, session_id="ses_beta")
    by_status = dashboard.member.get(reverse("sandbox-list"), {"status": "running"}).content.decode()
    assert running.id in by_status and other.id in by_status and stopped.id not in by_status
    by_session = dashboard.member.get(reverse("sandbox-list"), {"session": "ses_alpha"}).content.decode()
    assert running.id in by_session and stopped.id in by_session and other.id not in by_session
    both = dashboard.member.get(
        reverse("sandbox-list"), {"session": "ses_alpha", "status": "terminated"}
    ).content.decode()
    assert stopped.id in both and running.id not in both
    nothing = dashboard.member.get(reverse("sandbox-list"), {"session": "ses_none"}).content.decode()
    assert "No sandbox matches these filters" in nothing


def test_an_empty_list_says_how_sandboxes_are_made(dashboard):
    page = dashboard.viewer.get(reverse("sandbox-list")).content.decode()
    assert "No sandboxes yet" in page
    assert "/api/v1/sandbox/create" in page


def test_the_list_costs_the_same_queries_at_5_and_50_rows(dashboard, django_assert_num_queries):
    for index in range(5):
        sandbox = make_sandbox(dashboard.org_id, minutes_ago=index)
        make_artifact(dashboard.org_id, sandbox, f"a/{index}")
    with django_assert_num_queries(SANDBOX_LIST_QUERIES):
        assert dashboard.owner.get(reverse("sandbox-list")).status_code == 200
    for index in range(45):
        sandbox = make_sandbox(dashboard.org_id, status=SandboxStatus.TERMINATED, minutes_ago=10 + index)
        make_artifact(dashboard.org_id, sandbox, f"b/{index}")
    with django_assert_num_queries(SANDBOX_LIST_QUERIES):
        response = dashboard.owner.get(reverse("sandbox-list"))
    assert response.content.decode().count('href="/sandboxes/sbx_') == 50
    with django_assert_num_queries(SANDBOX_FRAGMENT_QUERIES):
        assert hx_get(dashboard.owner, reverse("sandbox-list")).status_code == 200


def test_the_list_pages_by_keyset(dashboard):
    made = [make_sandbox(dashboard.org_id, minutes_ago=index) for index in range(53)]
    first = dashboard.owner.get(reverse("sandbox-list")).content.decode()
    assert all(s.id in first for s in made[:50]) and not any(s.id in first for s in made[50:])
    older = re.search(r'href="(/sandboxes/\?cursor=[^"]+)"', first).group(1)
    second = dashboard.owner.get(unescape(older)).content.decode()
    assert all(s.id in second for s in made[50:]) and not any(s.id in second for s in made[:50])
    assert "Newest" in second
    broken = dashboard.owner.get(reverse("sandbox-list"), {"cursor": "!!!"})
    assert broken.status_code == 200
    assert "cursor" in broken.content.decode()


def test_the_table_fragment_polls_while_a_sandbox_is_live(dashboard):
    make_sandbox(dashboard.org_id, status=SandboxStatus.TERMINATED)
    live = make_sandbox(dashboard.org_id, status=SandboxStatus.TERMINATING)
    response = hx_get(dashboard.viewer, reverse("sandbox-list"), status="")
    assert response.status_code == 200
    body = response.content.decode()
    assert body.lstrip().startswith('<div id="sandbox-table"')
    assert "<html" not in body
    assert 'hx-trigger="every' in body and 'hx-swap="outerHTML"' in body
    full = dashboard.viewer.get(reverse("sandbox-list")).content.decode()
    assert '<div id="sandbox-table"' in full and "<html" in full
    Sandbox.objects.filter(id=live.id).update(status=SandboxStatus.TERMINATED)
    done = hx_get(dashboard.viewer, reverse("sandbox-list"))
    assert done.status_code == 286
    assert "hx-trigger" not in done.content.decode()
    assert 'class="badge badge-terminated"' in done.content.decode()


def test_polling_keeps_the_filters(dashboard):
    make_sandbox(dashboard.org_id, session_id="ses_keep")
    body = hx_get(dashboard.viewer, reverse("sandbox-list"), session="ses_keep").content.decode()
    assert 'hx-get="/sandboxes/?session=ses_keep"' in body


def test_a_history_restore_gets_the_whole_page(dashboard):
    make_sandbox(dashboard.org_id)
    response = dashboard.viewer.get(
        reverse("sandbox-list"), HTTP_HX_REQUEST="true", HTTP_HX_HISTORY_RESTORE_REQUEST="true"
    )
    assert "<html" in response.content.decode()


# --- detail --------------------------------------------------------------------------------------


def test_the_detail_shows_fields_and_an_unisolated_warning(dashboard):
    sandbox = make_sandbox(dashboard.org_id, isolated=False, session_id="ses_warn")
    page = dashboard.viewer.get(reverse("sandbox-detail", args=[sandbox.id])).content.decode()
    assert "Unisolated sandbox." in page
    for text in ("ses_warn", sandbox.host, "1Gi", "Running"):
        assert text in page
    isolated = make_sandbox(dashboard.org_id)
    assert (
        "Unisolated sandbox."
        not in dashboard.viewer.get(reverse("sandbox-detail", args=[isolated.id])).content.decode()
    )


def test_a_stopped_sandbox_explains_why_its_workspace_cannot_be_browsed(dashboard):
    sandbox = make_sandbox(dashboard.org_id, status=SandboxStatus.TERMINATED, stopped_at=timezone.now())
    page = dashboard.member.get(
        reverse("sandbox-detail", args=[sandbox.id]), {"path": "/workspace/out"}
    ).content.decode()
    assert "This sandbox has stopped, and its workspace files were removed with it." in page
    assert reverse("sandbox-save", args=[sandbox.id]) not in page
    assert not AuditEvent.objects.filter(action="file.list").exists(), "no listing was asked of a worker"
    fragment = hx_get(dashboard.member, reverse("sandbox-detail", args=[sandbox.id]), target="workspace-browser")
    assert fragment.content.decode().lstrip().startswith('<section id="workspace-browser"')


def test_the_detail_lists_the_sandboxes_artifacts_and_newest_50_events(dashboard, owner):
    sandbox = make_sandbox(dashboard.org_id, status=SandboxStatus.TERMINATED)
    other = make_sandbox(dashboard.org_id)
    mine = make_artifact(dashboard.org_id, sandbox, "reports/summary.pdf", size=2048)
    theirs = make_artifact(dashboard.org_id, other, "elsewhere.txt")
    actor = Actor(organization_id=dashboard.org_id, label="agent-7")
    for index in range(55):
        audit_record(
            actor=actor,
            action="command.execute",
            resource=f"sandbox:{sandbox.id}:cmd{index:02d}",
            sandbox_id=sandbox.id,
        )
    audit_record(actor=actor, action="command.execute", resource="not-this-one", sandbox_id=other.id)
    page = dashboard.viewer.get(reverse("sandbox-detail", args=[sandbox.id])).content.decode()
    assert "reports/summary.pdf" in page and "2.0\xa0KB" in page
    assert reverse("artifact-detail", args=[mine.id]) in page
    assert theirs.remote_path not in page
    assert f"sandbox:{sandbox.id}:cmd54" in page and f"sandbox:{sandbox.id}:cmd05" in page
    assert f"sandbox:{sandbox.id}:cmd04" not in page, "only the newest 50"
    assert "not-this-one" not in page


def test_user_content_is_escaped(dashboard):
    sandbox = make_sandbox(
        dashboard.org_id,
        session_id="<b>bold</b>",
        status=SandboxStatus.ERROR,
        error_message="<script>alert(1)</script>",
    )
    page = dashboard.viewer.get(reverse("sandbox-detail", args=[sandbox.id])).content.decode()
    assert "<script>alert(1)</script>" not in page and "&lt;script&gt;" in page
    assert "<b>bold</b>" not in page


def test_the_status_fragment_polls_until_the_sandbox_stops(dashboard):
    sandbox = make_sandbox(dashboard.org_id, status=SandboxStatus.TERMINATING)
    url = reverse("sandbox-detail", args=[sandbox.id])
    polling = hx_get(dashboard.viewer, url, target="sandbox-status")
    assert polling.status_code == 200
    assert polling.content.decode().lstrip().startswith('<dl id="sandbox-status"')
    assert "hx-trigger" in polling.content.decode()
    Sandbox.objects.filter(id=sandbox.id).update(status=SandboxStatus.TERMINATED, stopped_at=timezone.now())
    done = hx_get(dashboard.viewer, url, target="sandbox-status")
    assert done.status_code == 286
    assert "hx-trigger" not in done.content.decode()


def test_the_artifact_picker_is_bounded_and_searchable(dashboard, stranger):
    sandbox = make_sandbox(dashboard.org_id)
    for index in range(60):
        make_artifact(dashboard.org_id, None, f"bulk/{index:02d}.bin")
    make_artifact(dashboard.org_id, None, "models/weights.safetensors")
    make_artifact(dashboard.org_id, None, "models/pending.bin", state=ArtifactState.PENDING)
    make_artifact(stranger.org_id, None, "models/globex-secret.bin")
    url = reverse("sandbox-detail", args=[sandbox.id])
    page = dashboard.member.get(url).content.decode()
    assert page.count('<option value="art_') == 50
    found = hx_get(dashboard.member, url, target="artifact-picker", q="models").content.decode()
    assert found.lstrip().startswith('<div id="artifact-picker"')
    assert "models/weights.safetensors" in found
    assert "pending.bin" not in found and "globex-secret" not in found
    assert "No artifact matches" in hx_get(dashboard.member, url, target="artifact-picker", q="zzz").content.decode()


# --- actions that fail cleanly ---------------------------------------------------------------------


def test_saving_from_a_stopped_sandbox_shows_why_and_changes_nothing(dashboard):
    sandbox = make_sandbox(dashboard.org_id, status=SandboxStatus.TERMINATED)
    url = reverse("sandbox-save", args=[sandbox.id])
    inline = dashboard.member.post(url, {"path": "/workspace/out.txt"}, **HTMX)
    assert inline.status_code == 200
    assert 'role="alert"' in inline.content.decode()
    assert "not running" in inline.content.decode()
    plain = dashboard.member.post(url, {"path": "/workspace/out.txt"}, follow=True)
    assert "not running" in plain.content.decode()
    assert plain.redirect_chain[-1][0] == reverse("sandbox-detail", args=[sandbox.id])
    assert not Transfer.objects.exists()
    assert not Artifact.objects.exists()


def test_a_path_outside_the_workspace_is_refused(dashboard):
    sandbox = make_sandbox(dashboard.org_id)
    response = dashboard.member.post(reverse("sandbox-save", args=[sandbox.id]), {"path": "/etc/passwd"}, **HTMX)
    assert "outside /workspace" in response.content.decode()
    response = dashboard.member.post(reverse("sandbox-save", args=[sandbox.id]), {"path": "/workspace/../etc"}, **HTMX)
    assert "'..'" in unescape(response.content.decode())
    assert not Transfer.objects.exists()


def test_bringing_in_another_organizations_artifact_is_refused(dashboard, stranger):
    sandbox = make_sandbox(dashboard.org_id)
    foreign = make_artifact(stranger.org_id, None, "globex.txt")
    response = dashboard.member.post(
        reverse("sandbox-bring-in", args=[sandbox.id]), {"artifact": foreign.id, "target_path": "/workspace/"}, **HTMX
    )
    assert "not found" in response.content.decode()
    missing = dashboard.member.post(
        reverse("sandbox-bring-in", args=[sandbox.id]), {"target_path": "/workspace/"}, **HTMX
    )
    assert "Pick an artifact" in missing.content.decode()
    assert not Transfer.objects.exists()


def test_extend_moves_the_expiry_and_reports_bad_input(dashboard):
    sandbox = make_sandbox(dashboard.org_id)
    before = sandbox.expires_at
    response = dashboard.member.post(reverse("sandbox-extend", args=[sandbox.id]), {"seconds": 600}, follow=True)
    assert "now expires at" in response.content.decode()
    sandbox.refresh_from_db()
    assert sandbox.expires_at == before + timedelta(seconds=600)
    assert AuditEvent.objects.filter(action="sandbox.extend", sandbox_id=sandbox.id).exists()
    bad = dashboard.member.post(reverse("sandbox-extend", args=[sandbox.id]), {"seconds": 0}, follow=True)
    assert "greater than or equal to 1" in bad.content.decode()
    too_far = dashboard.member.post(
        reverse("sandbox-extend", args=[sandbox.id]), {"seconds": settings.SANDBOX_MAX_TIMEOUT_SECONDS}, follow=True
    )
    assert "at most" in too_far.content.decode()
    sandbox.refresh_from_db()
    assert sandbox.expires_at == before + timedelta(seconds=600)


def test_extending_a_stopped_sandbox_says_so(dashboard):
    sandbox = make_sandbox(dashboard.org_id, status=SandboxStatus.TERMINATED)
    response = dashboard.member.post(reverse("sandbox-extend", args=[sandbox.id]), {"seconds": 60}, follow=True)
    assert "not running" in response.content.decode()


def test_stopping_a_stopped_sandbox_is_harmless(dashboard):
    sandbox = make_sandbox(dashboard.org_id, status=SandboxStatus.TERMINATED)
    response = dashboard.member.post(reverse("sandbox-stop", args=[sandbox.id]), follow=True)
    assert "already stopped" in response.content.decode()


# --- transfer progress -----------------------------------------------------------------------------


def test_the_progress_fragment_polls_until_the_transfer_ends(dashboard):
    sandbox = make_sandbox(dashboard.org_id)
    artifact = make_artifact(dashboard.org_id, sandbox, "big.bin", state=ArtifactState.PENDING)
    transfer = make_transfer(
        dashboard.org_id, sandbox, artifact, state=TransferState.RUNNING, bytes_done=25 << 20, bytes_total=100 << 20
    )
    url = reverse("sandbox-transfer", args=[sandbox.id, transfer.id])
    running = dashboard.viewer.get(url, **HTMX)
    body = running.content.decode()
    assert running.status_code == 200
    assert body.lstrip().startswith(f'<div id="transfer-{transfer.id}"')
    assert f'max="{100 << 20}" value="{25 << 20}"' in body
    assert 'hx-trigger="every 500ms"' in body and 'hx-swap="outerHTML"' in body
    assert "25.0\xa0MB of 100.0\xa0MB" in body
    page = dashboard.viewer.get(url)
    assert page.status_code == 200 and "<html" in page.content.decode() and "<progress" in page.content.decode()

    Artifact.objects.filter(id=artifact.id).update(state=ArtifactState.READY, version=3)
    Transfer.objects.filter(id=transfer.id).update(state=TransferState.SUCCEEDED, bytes_done=100 << 20)
    done = dashboard.viewer.get(url, **HTMX)
    assert done.status_code == 286
    assert reverse("artifact-detail", args=[artifact.id]) in done.content.decode()
    assert "hx-trigger" not in done.content.decode()


def test_a_failed_transfer_shows_its_error(dashboard):
    sandbox = make_sandbox(dashboard.org_id)
    artifact = make_artifact(dashboard.org_id, sandbox, "gone.bin", state=ArtifactState.FAILED)
    transfer = make_transfer(
        dashboard.org_id,
        sandbox,
        artifact,
        state=TransferState.FAILED,
        error_code="FILE_NOT_FOUND",
        error_message="/workspace/big.bin does not exist",
    )
    response = dashboard.viewer.get(reverse("sandbox-transfer", args=[sandbox.id, transfer.id]), **HTMX)
    assert response.status_code == 286
    assert "/workspace/big.bin does not exist" in response.content.decode()
    assert 'role="alert"' in response.content.decode()


def test_a_transfer_is_only_seen_through_its_own_sandbox(dashboard, stranger):
    sandbox = make_sandbox(dashboard.org_id)
    other = make_sandbox(dashboard.org_id)
    transfer = make_transfer(
        dashboard.org_id, sandbox, make_artifact(dashboard.org_id, sandbox, "x", state=ArtifactState.PENDING)
    )
    assert dashboard.owner.get(reverse("sandbox-transfer", args=[other.id, transfer.id])).status_code == 404
    assert dashboard.stranger.get(reverse("sandbox-transfer", args=[sandbox.id, transfer.id])).status_code == 404
    theirs = make_sandbox(stranger.org_id)
    assert dashboard.stranger.get(reverse("sandbox-transfer", args=[theirs.id, transfer.id])).status_code == 404
    assert dashboard.anonymous.get(reverse("sandbox-transfer", args=[sandbox.id, transfer.id])).status_code == 302


# --- with the worker -------------------------------------------------------------------------------


def poll_until_final(client, url: str, *, target: str | None = None, timeout: float = 60):
    headers = dict(HTMX)
    if target:
        headers["HTTP_HX_TARGET"] = target
    deadline = time.monotonic() + timeout
    while True:
        response = client.get(url, **headers)
        if response.status_code == 286:
            return response
        assert response.status_code == 200, response.content
        assert time.monotonic() < deadline, f"{url} still polling after {timeout} s:\n{response.content.decode()}"
        time.sleep(0.2)


def write_files(owner, sandbox_id: str, files: dict[str, bytes]) -> None:
    payload = {"files": [{"path": path, "content": base64.b64encode(data).decode()} for path, data in files.items()]}
    response = owner.post(f"/sandbox/{sandbox_id}/files", payload)
    assert response.status_code in (200, 201), response.content


def read_file(owner, sandbox_id: str, path: str) -> bytes:
    response = owner.get(f"/sandbox/{sandbox_id}/files", {"path": path})
    assert response.status_code == 200, response.content
    return base64.b64decode(response.json()["content"])


@pytest.mark.worker
def test_the_workspace_browser_lists_and_navigates(live, sandbox, owner, dashboard):
    sandbox_id = sandbox["sandbox_id"]
    write_files(
        owner,
        sandbox_id,
        {"/workspace/out/report.txt": b"x" * 3000, "/workspace/notes.md": b"# notes\n", "/workspace/<b>odd.txt": b"!"},
    )
    url = reverse("sandbox-detail", args=[sandbox_id])
    root = dashboard.viewer.get(url).content.decode()
    assert "out/" in root and "notes.md" in root and "8\xa0bytes" in root
    assert "<b>odd" not in root and "&lt;b&gt;odd.txt" in root
    assert f'href="{url}?path=/workspace/out"' in root
    assert "just now" in root, "modified times are humanized"
    assert reverse("sandbox-save", args=[sandbox_id]) not in root, "a viewer gets no save buttons"

    folder = hx_get(dashboard.member, url, target="workspace-browser", path="/workspace/out")
    body = folder.content.decode()
    assert folder.status_code == 200
    assert body.lstrip().startswith('<section id="workspace-browser"') and "<html" not in body
    assert "report.txt" in body and "2.9\xa0KB" in body and "notes.md" not in body
    assert 'aria-current="location">out<' in body
    assert 'value="/workspace/out/report.txt"' in body, "members may save each file"

    outside = dashboard.viewer.get(url, {"path": "/etc"}).content.decode()
    assert "outside /workspace" in outside
    missing = dashboard.viewer.get(url, {"path": "/workspace/nope"}).content.decode()
    assert 'class="message message-error"' in missing


@pytest.mark.worker
def test_the_workspace_browser_shows_a_name_that_is_not_utf8(live, sandbox, owner, dashboard):
    sandbox_id = sandbox["sandbox_id"]
    plant = "import os; os.mkdir(b'/workspace/dir\\xfe'); open(b'/workspace/bad\\xff name', 'w')"
    made = owner.post(f"/sandbox/{sandbox_id}/execute", {"command": ["python3", "-c", plant]})
    assert made.json()["exit_code"] == 0, made.content
    url = reverse("sandbox-detail", args=[sandbox_id])
    page = dashboard.viewer.get(url)
    assert page.status_code == 200
    body = page.content.decode("utf-8")
    assert "bad\\xff name" in body and "dir\\xfe/" in body
    folder = hx_get(dashboard.member, url, target="workspace-browser", path="/workspace/dir\\xfe")
    assert folder.status_code == 200
    assert 'class="message message-error"' in folder.content.decode("utf-8"), "a shown name does not lead back"


@pytest.mark.worker
def test_save_as_artifact_shows_progress_until_it_is_stored(live, sandbox, owner, dashboard):
    sandbox_id = sandbox["sandbox_id"]
    data = bytes(range(256)) * 4096
    write_files(owner, sandbox_id, {"/workspace/out/data.bin": data})
    started = dashboard.member.post(
        reverse("sandbox-save", args=[sandbox_id]), {"path": "/workspace/out/data.bin"}, **HTMX
    )
    assert started.status_code == 200
    body = started.content.decode()
    assert 'id="transfer-trf_' in body and "<progress" in body
    poll_url = re.search(r'hx-get="([^"]+)"', body).group(1)
    done = poll_until_final(dashboard.member, poll_url)
    artifact = Artifact.objects.get(sandbox_id=sandbox_id, state=ArtifactState.READY)
    assert artifact.remote_path == "out/data.bin" and artifact.size == len(data)
    assert reverse("artifact-detail", args=[artifact.id]) in done.content.decode()
    assert "Saved 1.0\xa0MB" in done.content.decode()
    assert artifact.id in dashboard.viewer.get(reverse("sandbox-detail", args=[sandbox_id])).content.decode()

    folder = dashboard.member.post(reverse("sandbox-save", args=[sandbox_id]), {"path": "/workspace/out"})
    assert folder.status_code == 302
    transfer_page = folder["Location"]
    assert dashboard.member.get(transfer_page).status_code == 200
    poll_until_final(dashboard.member, transfer_page)
    folder = Artifact.objects.get(sandbox_id=sandbox_id, remote_path="out", state=ArtifactState.READY)
    assert folder.is_folder and folder.entry_count == 1


@pytest.mark.worker
def test_bring_an_artifact_in(live, sandbox, owner, dashboard):
    sandbox_id = sandbox["sandbox_id"]
    write_files(owner, sandbox_id, {"/workspace/src/input.csv": b"a,b\n1,2\n"})
    saved = dashboard.member.post(
        reverse("sandbox-save", args=[sandbox_id]), {"path": "/workspace/src/input.csv"}, **HTMX
    )
    poll_until_final(dashboard.member, re.search(r'hx-get="([^"]+)"', saved.content.decode()).group(1))
    artifact = Artifact.objects.get(sandbox_id=sandbox_id, state=ArtifactState.READY)

    other = owner.post("/sandbox/create", {"timeout_seconds": 600}).json()["sandbox_id"]
    page = dashboard.member.get(reverse("sandbox-detail", args=[other])).content.decode()
    assert f'<option value="{artifact.id}">' in page
    started = dashboard.member.post(
        reverse("sandbox-bring-in", args=[other]), {"artifact": artifact.id, "target_path": "/workspace/in/"}, **HTMX
    )
    assert started.status_code == 200 and "<progress" in started.content.decode()
    done = poll_until_final(dashboard.member, re.search(r'hx-get="([^"]+)"', started.content.decode()).group(1))
    assert "/workspace/in/input.csv" in done.content.decode()
    assert "the checksum matched" in done.content.decode()
    assert read_file(owner, other, "/workspace/in/input.csv") == b"a,b\n1,2\n"


@pytest.mark.worker
def test_stop_removes_the_sandbox_and_the_status_stops_polling(live, sandbox, dashboard):
    sandbox_id = sandbox["sandbox_id"]
    url = reverse("sandbox-detail", args=[sandbox_id])
    assert "Stop and delete its files" in dashboard.member.get(url).content.decode()
    response = dashboard.member.post(reverse("sandbox-stop", args=[sandbox_id]), follow=True)
    assert "Stopping sandbox" in response.content.decode()
    final = poll_until_final(dashboard.member, url, target="sandbox-status")
    assert "badge-terminated" in final.content.decode()
    assert Sandbox.objects.get(id=sandbox_id).status == SandboxStatus.TERMINATED
    assert AuditEvent.objects.filter(action="sandbox.stop", sandbox_id=sandbox_id, actor="member-user").exists()
    assert "workspace files were removed" in dashboard.member.get(url).content.decode()


def test_the_detail_says_what_disk_and_cpus_the_sandbox_got(dashboard):
    enforced = make_sandbox(dashboard.org_id, cpus_requested="4", disk="1Gi", disk_bytes=1 << 30, disk_enforced=True)
    page = unescape(dashboard.owner.get(reverse("sandbox-detail", args=[enforced.id])).content.decode())
    assert "asked for 4, more than a host has" in page
    assert re.search(r"<dt>Disk</dt>\s*<dd>1Gi <span class=\"muted\">\(enforced\)</span>", page)

    plain = make_sandbox(dashboard.org_id, disk="1Gi", disk_bytes=1 << 30, disk_enforced=False)
    page = dashboard.owner.get(reverse("sandbox-detail", args=[plain.id])).content.decode()
    assert "not enforced on this host" in page
