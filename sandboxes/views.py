"""Dashboard pages for sandboxes. Everything that touches a sandbox's files goes through the
services, which run it on the sandbox's worker; these views never read a workspace themselves."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from django import forms
from django.contrib import messages
from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.utils.http import urlencode
from django.views.decorators.http import require_POST

from accounts.access import has_role, org_view
from accounts.models import Role
from artifacts.selectors import artifact_get, artifact_list
from audit.selectors import audit_event_list
from core.errors import NotFound, StowageError
from core.htmx import fragment, page_or_fragment, wants_fragment
from core.pagination import newest_first_page
from sandboxes import files as sandbox_files
from sandboxes import services
from sandboxes.forms import BringInForm, ExtendForm, SandboxFilterForm, SaveArtifactForm
from sandboxes.models import FINAL_STATUSES, Sandbox, SandboxStatus
from sandboxes.runtime.base import WORKSPACE
from sandboxes.selectors import (
    sandbox_get,
    sandbox_list_with_artifact_counts,
)
from transfers.models import FINAL_STATES, Transfer
from transfers.selectors import transfer_get
from transfers.services import artifact_download_to_sandbox, artifact_upload_from_sandbox

PAGE_SIZE = 50
# A folder can hold thousands of entries; a page that shows them all helps no one.
WORKSPACE_ENTRIES_SHOWN = 1000
PICKER_SIZE = 50
RECENT_EVENTS = 50
RECENT_ARTIFACTS = 50


def _sandbox_or_404(request: HttpRequest, sandbox_id: str) -> Sandbox:
    try:
        return sandbox_get(organization_id=request.organization.id, sandbox_id=sandbox_id)
    except NotFound:
        raise Http404("not found") from None


def _first_error(form: forms.Form) -> str:
    for name, errors in form.errors.items():
        label = form.fields[name].label if name in form.fields else ""
        return f"{label}: {errors[0]}" if label else str(errors[0])
    return "That did not work; check the form and try again."


@org_view()
def sandbox_list(request: HttpRequest) -> HttpResponse:
    form = SandboxFilterForm(request.GET)
    form.is_valid()
    status = form.cleaned_data.get("status") or None
    session = form.cleaned_data.get("session") or None
    cursor = form.cleaned_data.get("cursor") or None
    sandboxes = sandbox_list_with_artifact_counts(
        organization_id=request.organization.id, status=status, session_id=session
    )
    page_error = ""
    try:
        page = newest_first_page(sandboxes, limit=PAGE_SIZE, cursor=cursor)
    except StowageError as exc:
        page_error, cursor = f"{exc.message}; showing the newest sandboxes instead.", None
        page = newest_first_page(sandboxes, limit=PAGE_SIZE, cursor=None)
    filters = {key: value for key, value in (("status", status), ("session", session)) if value}
    final = all(sandbox.status in FINAL_STATUSES for sandbox in page.rows)
    context = {
        "form": form,
        "page": page,
        "filtered": bool(filters),
        "polling": not final,
        "query": urlencode({**filters, **({"cursor": cursor} if cursor else {})}),
        "first_query": urlencode(filters),
        "next_query": urlencode({**filters, "cursor": page.next_cursor}) if page.next_cursor else "",
        "is_later_page": bool(cursor),
        "page_error": page_error,
    }
    return page_or_fragment(
        request, "sandboxes/sandbox_list.html", "sandboxes/partials/_sandbox_table.html", context, final=final
    )


def _crumbs(path: str) -> list[tuple[str, str]]:
    parts = [part for part in path.removeprefix(WORKSPACE).split("/") if part]
    crumbs = [("workspace", WORKSPACE)]
    for index, part in enumerate(parts):
        crumbs.append((part, WORKSPACE + "/" + "/".join(parts[: index + 1])))
    return crumbs


def _workspace(request: HttpRequest, sandbox: Sandbox) -> dict[str, Any]:
    """The folder named by ``?path=``, as the sandbox's worker lists it."""
    requested = request.GET.get("path") or WORKSPACE
    context: dict[str, Any] = {
        "path": WORKSPACE,
        "crumbs": [],
        "parent": None,
        "entries": [],
        "workspace_error": "",
        "entries_hidden": 0,
        "workspace_available": sandbox.is_running,
    }
    if not sandbox.is_running:
        return context
    try:
        path = services.check_sandbox_path(requested, allow_root=True)
        context.update(path=path, crumbs=_crumbs(path))
        files = sandbox_files.sandbox_list_files(actor=request.actor, sandbox=sandbox, path=path, recursive=False)
    except StowageError as exc:
        context["workspace_error"] = exc.message
        return context
    entries = [{**entry, "modified_at": datetime.fromisoformat(entry["modified_at"])} for entry in files]
    entries.sort(key=lambda entry: (entry["type"] != "directory", entry["name"].casefold()))
    context["entries"] = entries[:WORKSPACE_ENTRIES_SHOWN]
    context["entries_hidden"] = max(0, len(entries) - WORKSPACE_ENTRIES_SHOWN)
    if path != WORKSPACE:
        context["parent"] = path.rsplit("/", 1)[0]
    return context


def _picker(request: HttpRequest) -> dict[str, Any]:
    """The organization's newest ready artifacts, narrowed by ``?q=``; never more than a screenful."""
    query = request.GET.get("q", "").strip()[:200]
    artifacts = artifact_list(organization_id=request.organization.id)
    if query:
        artifacts = artifacts.filter(remote_path__icontains=query)
    return {
        "q": query,
        "picker_artifacts": list(artifacts.only("id", "remote_path", "version", "size", "created_at")[:PICKER_SIZE]),
        "picker_limit": PICKER_SIZE,
    }


@org_view()
def sandbox_detail(request: HttpRequest, sandbox_id: str) -> HttpResponse:
    sandbox = _sandbox_or_404(request, sandbox_id)
    target = request.htmx.target if wants_fragment(request) else None
    if target == "sandbox-status":
        return fragment(
            request,
            "sandboxes/partials/_sandbox_status.html",
            {"sandbox": sandbox},
            final=sandbox.status in FINAL_STATUSES,
        )
    if target == "workspace-browser":
        # The link that asked for the folder is swapped away; focus goes to the new listing.
        return fragment(
            request,
            "sandboxes/partials/_workspace_browser.html",
            {"sandbox": sandbox, **_workspace(request, sandbox), "focus_browser": True},
        )
    if target == "artifact-picker":
        return fragment(request, "sandboxes/partials/_artifact_picker.html", _picker(request))
    context = {
        "sandbox": sandbox,
        **_workspace(request, sandbox),
        # Only someone who may bring an artifact in needs the picker.
        **(_picker(request) if sandbox.is_running and has_role(request.membership, Role.MEMBER) else {}),
        "bring_in_form": BringInForm(),
        "extend_form": ExtendForm(),
        "artifacts": list(
            artifact_list(organization_id=request.organization.id, sandbox_id=sandbox.id)[:RECENT_ARTIFACTS]
        ),
        "events": list(
            audit_event_list(organization_id=request.organization.id, sandbox_id=sandbox.id)[:RECENT_EVENTS]
        ),
    }
    return render(request, "sandboxes/sandbox_detail.html", context)


def _action_failed(request: HttpRequest, sandbox: Sandbox, message: str) -> HttpResponse:
    if wants_fragment(request):
        return render(request, "sandboxes/partials/_action_error.html", {"message": message})
    messages.error(request, message)
    return redirect("sandbox-detail", sandbox.id)


def _transfer_context(sandbox: Sandbox, transfer: Transfer) -> dict[str, Any]:
    return {"sandbox": sandbox, "transfer": transfer, "transfer_folder": transfer.path.rsplit("/", 1)[0] or WORKSPACE}


def _transfer_started(request: HttpRequest, sandbox: Sandbox, transfer: Transfer) -> HttpResponse:
    if wants_fragment(request):
        return render(request, "sandboxes/partials/_transfer.html", _transfer_context(sandbox, transfer))
    return redirect("sandbox-transfer", sandbox.id, transfer.id)


@org_view(Role.MEMBER)
@require_POST
def sandbox_save(request: HttpRequest, sandbox_id: str) -> HttpResponse:
    """Save a file or folder of the workspace as an artifact; the worker copies it in the background."""
    sandbox = _sandbox_or_404(request, sandbox_id)
    form = SaveArtifactForm(request.POST)
    if not form.is_valid():
        return _action_failed(request, sandbox, _first_error(form))
    try:
        transfer = artifact_upload_from_sandbox(
            actor=request.actor,
            sandbox=sandbox,
            path=form.cleaned_data["path"],
            remote_path=form.cleaned_data["remote_path"] or None,
            wait=False,
        )
    except StowageError as exc:
        return _action_failed(request, sandbox, exc.message)
    return _transfer_started(request, sandbox, transfer)


@org_view(Role.MEMBER)
@require_POST
def sandbox_bring_in(request: HttpRequest, sandbox_id: str) -> HttpResponse:
    """Copy one of the organization's artifacts into the workspace."""
    sandbox = _sandbox_or_404(request, sandbox_id)
    form = BringInForm(request.POST)
    if not form.is_valid():
        return _action_failed(request, sandbox, _first_error(form))
    try:
        artifact = artifact_get(organization_id=request.organization.id, artifact_id=form.cleaned_data["artifact"])
        target = form.cleaned_data["target_path"].strip() or WORKSPACE + "/"
        if target.endswith("/"):
            target += artifact.filename
        transfer = artifact_download_to_sandbox(
            actor=request.actor, sandbox=sandbox, artifact=artifact, target_path=target, wait=False
        )
    except StowageError as exc:
        return _action_failed(request, sandbox, exc.message)
    return _transfer_started(request, sandbox, transfer)


@org_view()
def sandbox_transfer(request: HttpRequest, sandbox_id: str, transfer_id: str) -> HttpResponse:
    """A transfer's progress: a page, or the fragment that polls itself until the transfer ends."""
    sandbox = _sandbox_or_404(request, sandbox_id)
    try:
        transfer = transfer_get(organization_id=request.organization.id, transfer_id=transfer_id)
    except NotFound:
        raise Http404("not found") from None
    if transfer.sandbox_id != sandbox.id:
        raise Http404("not found")
    context = _transfer_context(sandbox, transfer)
    if wants_fragment(request):
        return fragment(request, "sandboxes/partials/_transfer.html", context, final=transfer.state in FINAL_STATES)
    return render(request, "sandboxes/transfer_detail.html", context)


@org_view(Role.MEMBER)
@require_POST
def sandbox_stop(request: HttpRequest, sandbox_id: str) -> HttpResponse:
    sandbox = _sandbox_or_404(request, sandbox_id)
    if sandbox.status == SandboxStatus.TERMINATED:
        messages.info(request, f"Sandbox {sandbox.id} is already stopped.")
        return redirect("sandbox-detail", sandbox.id)
    try:
        # The worker removes the files in the background; the status on the page follows it.
        services.sandbox_stop(actor=request.actor, sandbox=sandbox, wait=False)
    except StowageError as exc:
        messages.error(request, exc.message)
    else:
        messages.success(request, f"Stopping sandbox {sandbox.id}. Its workspace files are being removed.")
    return redirect("sandbox-detail", sandbox.id)


@org_view(Role.MEMBER)
@require_POST
def sandbox_extend(request: HttpRequest, sandbox_id: str) -> HttpResponse:
    sandbox = _sandbox_or_404(request, sandbox_id)
    form = ExtendForm(request.POST)
    if not form.is_valid():
        messages.error(request, _first_error(form))
        return redirect("sandbox-detail", sandbox.id)
    try:
        sandbox = services.sandbox_extend(
            actor=request.actor, sandbox=sandbox, additional_seconds=form.cleaned_data["seconds"]
        )
    except StowageError as exc:
        messages.error(request, exc.message)
    else:
        messages.success(request, f"Sandbox {sandbox.id} now expires at {sandbox.expires_at:%Y-%m-%d %H:%M:%S} UTC.")
    return redirect("sandbox-detail", sandbox.id)
