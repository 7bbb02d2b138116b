"""The audit log for organization admins: browse, export, and check that no one edited it."""

from __future__ import annotations

import csv
import json
from collections.abc import Iterable, Iterator
from typing import Any

from django.contrib import messages
from django.db.models import Subquery
from django.http import HttpRequest, HttpResponse, StreamingHttpResponse
from django.shortcuts import redirect, render
from django.urls import reverse
from django.utils import timezone
from django.utils.http import urlencode
from django.views.decorators.http import require_POST

from accounts.access import org_view
from accounts.models import Role
from audit.forms import KNOWN_ACTIONS, AuditFilterForm
from audit.models import AuditEvent
from audit.selectors import audit_event_list
from audit.services import audit_record, audit_verify_chain
from core.htmx import wants_fragment

PAGE_SIZE = 50
EXPORT_CHUNK = 2000
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
)
# A spreadsheet runs a cell that starts with one of these as a formula.
_FORMULA_PREFIXES = ("=", "+", "-", "@", "\t", "\r")


def _bad_filters(form: AuditFilterForm) -> str:
    labels = {name: field.label or name for name, field in form.fields.items()}
    return " ".join(
        f"{labels[name]}: {errors[0]}" if name in labels else str(errors[0]) for name, errors in form.errors.items()
    )


@org_view(Role.ADMIN)
def audit_list(request: HttpRequest) -> HttpResponse:
    form = AuditFilterForm(request.GET)
    form.is_valid()
    events = audit_event_list(organization_id=request.organization.id, **form.selector_filters())
    before = form.cleaned_data.get("before")
    if before:
        # The cursor is an event id, not its sequence number, which counts every organization's events.
        events = events.filter(
            seq__lt=Subquery(
                AuditEvent.objects.filter(organization_id=request.organization.id, id=before).values("seq")[:1]
            )
        )
    rows = list(events[: PAGE_SIZE + 1])
    has_more = len(rows) > PAGE_SIZE
    rows = rows[:PAGE_SIZE]
    for event in rows:
        event.details_text = json.dumps(event.details, indent=2, sort_keys=True, ensure_ascii=False)
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
    }
    if wants_fragment(request) and request.htmx.target == "audit-events":
        return render(request, "audit/partials/_event_table.html", context)
    return render(request, "audit/event_list.html", context)


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


def _csv_lines(events: Iterable[AuditEvent]) -> Iterator[str]:
    writer = csv.writer(_Echo())
    yield writer.writerow(EXPORT_COLUMNS)
    for event in events:
        yield writer.writerow([csv_cell(getattr(event, column)) for column in EXPORT_COLUMNS])


@org_view(Role.ADMIN)
def audit_export(request: HttpRequest) -> HttpResponse:
    """Every event the filters match, streamed as CSV: rows are read in chunks, never all at once."""
    form = AuditFilterForm(request.GET)
    if not form.is_valid():
        messages.error(request, f"The export was not started. {_bad_filters(form)}")
        return redirect(reverse("audit-list") + "?" + request.GET.urlencode())
    params = form.query_params()
    audit_record(
        actor=request.actor,
        action="audit.export",
        resource=f"organization:{request.organization.id}",
        details={"filters": params},
    )
    events = audit_event_list(organization_id=request.organization.id, **form.selector_filters())
    response = StreamingHttpResponse(
        _csv_lines(events.iterator(chunk_size=EXPORT_CHUNK)), content_type="text/csv; charset=utf-8"
    )
    response["Content-Disposition"] = f'attachment; filename="audit-{timezone.now():%Y%m%d-%H%M%S}.csv"'
    response["Cache-Control"] = "no-store"
    return response


@org_view(Role.ADMIN)
@require_POST
def audit_verify(request: HttpRequest) -> HttpResponse:
    """Walk the whole chain on demand; it reads every event, so it never runs on a page load."""
    report = audit_verify_chain()
    # The chain spans every organization; name the bad event only when it is this one's.
    bad_event_here = (
        bool(report.first_bad_event_id)
        and AuditEvent.objects.filter(organization_id=request.organization.id, id=report.first_bad_event_id).exists()
    )
    context = {
        "report": report,
        "bad_event_id": report.first_bad_event_id if bad_event_here else None,
        "checked_at": timezone.now(),
    }
    if wants_fragment(request):
        return render(request, "audit/partials/_chain_check.html", context)
    if report.ok:
        messages.success(request, "The audit log is intact: no event has been edited, removed or reordered.")
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
