"""The audit log for organization admins (and the instance security log for staff): browse,
export for an auditor, and check that no one edited it."""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

from django.contrib import messages
from django.db.models import Subquery
from django.http import HttpRequest, HttpResponse, StreamingHttpResponse
from django.shortcuts import redirect, render
from django.urls import reverse
from django.utils import timezone
from django.utils.http import urlencode
from django.views.decorators.http import require_POST

from accounts.access import org_view, staff_view
from accounts.models import Role
from audit.export import coverage, csv_lines, jsonl_lines
from audit.forms import KNOWN_ACTIONS, AuditFilterForm
from audit.models import AuditEvent
from audit.resources import attach_resource_links, with_resource_names
from audit.selectors import audit_event_list
from audit.services import audit_record, audit_verify_chain
from config.auth import request_actor
from core.htmx import wants_fragment

PAGE_SIZE = 50


def _bad_filters(form: AuditFilterForm) -> str:
    labels = {name: field.label or name for name, field in form.fields.items()}
    return " ".join(
        f"{labels[name]}: {errors[0]}" if name in labels else str(errors[0]) for name, errors in form.errors.items()
    )


def _urls(instance: bool) -> dict[str, str]:
    prefix = "audit-instance" if instance else "audit"
    return {
        "list_url": reverse(f"{prefix}-list"),
        "export_url": reverse(f"{prefix}-export"),
        "export_jsonl_url": reverse(f"{prefix}-export-jsonl"),
    }


def _event_page(request: HttpRequest, *, organization_id: str | None, instance: bool) -> HttpResponse:
    form = AuditFilterForm(request.GET)
    form.is_valid()
    events = audit_event_list(organization_id=organization_id, **form.selector_filters())
    before = form.cleaned_data.get("before")
    if before:
        # The cursor is an event id, not its sequence number, which counts every organization's events.
        events = events.filter(
            seq__lt=Subquery(AuditEvent.objects.filter(organization_id=organization_id, id=before).values("seq")[:1])
        )
    rows = list(with_resource_names(events)[: PAGE_SIZE + 1])
    has_more = len(rows) > PAGE_SIZE
    rows = rows[:PAGE_SIZE]
    for event in rows:
        event.details_text = json.dumps(event.details, indent=2, sort_keys=True, ensure_ascii=False)
    attach_resource_links(rows)
    params = form.query_params()
    context = {
        "form": form,
        "events": rows,
        "filtered": bool(params),
        "filters_query": urlencode(params),
        "next_query": urlencode({**params, "before": rows[-1].id}) if has_more else "",
        "is_later_page": bool(before),
        "known_actions": KNOWN_ACTIONS,
        "filter_errors": _bad_filters(form) if form.errors else "",
        "instance_log": instance,
        **_urls(instance),
    }
    if wants_fragment(request) and request.htmx.target == "audit-events":
        return render(request, "audit/partials/_event_table.html", context)
    return render(request, "audit/event_list.html", context)


@org_view(Role.ADMIN)
def audit_list(request: HttpRequest) -> HttpResponse:
    return _event_page(request, organization_id=request.organization.id, instance=False)


@staff_view
def instance_list(request: HttpRequest) -> HttpResponse:
    return _event_page(request, organization_id=None, instance=True)


def _export(
    request: HttpRequest, *, organization_id: str | None, instance: bool, as_jsonl: bool, actor
) -> HttpResponse:
    """Every event the filters match, streamed: rows are read in chunks, never all at once."""
    form = AuditFilterForm(request.GET)
    if not form.is_valid():
        messages.error(request, f"The export was not started. {_bad_filters(form)}")
        return redirect(_urls(instance)["list_url"] + "?" + request.GET.urlencode())
    params = form.query_params()
    audit_record(
        actor=actor,
        action="audit.export",
        resource=f"organization:{organization_id}" if organization_id else "instance",
        details={"filters": params},
        organization_id=organization_id,
    )
    events = audit_event_list(organization_id=organization_id, **form.selector_filters())
    manifest = coverage(events, organization_id=organization_id, filters=params)
    stamp = f"{timezone.now():%Y%m%d-%H%M%S}"
    span = f"-seq{manifest['first_seq']}-{manifest['last_seq']}" if manifest["events"] else ""
    if as_jsonl:
        body, content_type, suffix = jsonl_lines(events, manifest), "application/x-ndjson; charset=utf-8", "jsonl"
    else:
        body = csv_lines(events, manifest)
        content_type, suffix = "text/csv; charset=utf-8", "csv"
    response = StreamingHttpResponse(body, content_type=content_type)
    response["Content-Disposition"] = f'attachment; filename="audit-{stamp}{span}.{suffix}"'
    response["X-Audit-Export-Covers"] = manifest["covers"].encode("ascii", "replace").decode()
    response["Cache-Control"] = "no-store"
    return response


def _org_export(as_jsonl: bool) -> Callable[[HttpRequest], HttpResponse]:
    @org_view(Role.ADMIN)
    def view(request: HttpRequest) -> HttpResponse:
        return _export(
            request, organization_id=request.organization.id, instance=False, as_jsonl=as_jsonl, actor=request.actor
        )

    return view


def _instance_export(as_jsonl: bool) -> Callable[[HttpRequest], HttpResponse]:
    @staff_view
    def view(request: HttpRequest) -> HttpResponse:
        actor = request_actor(request, label=request.user.get_username(), user_id=request.user.pk)
        return _export(request, organization_id=None, instance=True, as_jsonl=as_jsonl, actor=actor)

    return view


audit_export = _org_export(as_jsonl=False)
audit_export_jsonl = _org_export(as_jsonl=True)
instance_export = _instance_export(as_jsonl=False)
instance_export_jsonl = _instance_export(as_jsonl=True)


@org_view(Role.ADMIN)
@require_POST
def audit_verify(request: HttpRequest) -> HttpResponse:
    """Walk the organization's chain (from the shared chain of earlier events) on demand; it reads
    every event of it, so it never runs on a page load."""
    report = audit_verify_chain(organization_id=request.organization.id)
    # The shared chain of earlier events spans every organization; name the bad event only when it is this one's.
    bad_event_here = (
        bool(report.first_bad_event_id)
        and AuditEvent.objects.filter(organization_id=request.organization.id, id=report.first_bad_event_id).exists()
    )
    context: dict[str, Any] = {
        "report": report,
        "bad_event_id": report.first_bad_event_id if bad_event_here else None,
        "checked_at": timezone.now(),
    }
    if wants_fragment(request):
        return render(request, "audit/partials/_chain_check.html", context)
    if report.ok:
        messages.success(
            request,
            f"The audit log is intact: no event has been edited, removed or reordered. {report.checked} events "
            f"verified ({report.organization_checked} of this organization); head hash {report.head_hash}.",
        )
    elif bad_event_here:
        messages.error(
            request, f"The audit log has been altered. First bad event: {report.first_bad_event_id} — {report.problem}."
        )
    elif report.first_bad_event_id:
        messages.error(
            request,
            f"The audit log has been altered at an event of another organization ({report.problem}). Ask the operator to run manage.py verify_audit.",
        )
    else:
        messages.error(request, f"The audit log has been altered: {report.problem}.")
    return redirect("audit-list")
