"""Dashboard pages for agent sessions: the list, and a session's page with its status, budget,
timeline, sandboxes across rotations and every artifact it made. The actions call the same
services as the API."""

from __future__ import annotations

from django import forms
from django.contrib import messages
from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import redirect
from django.utils.http import urlencode
from django.views.decorators.http import require_POST

from accounts.access import org_view
from accounts.models import Role
from agents import services
from agents.models import FINAL_STATUSES, AgentSession, SessionStatus
from agents.selectors import (
    session_artifacts,
    session_events,
    session_get,
    session_list,
    session_rotations,
    session_sandboxes,
)
from core.errors import NotFound, StowageError
from core.htmx import page_or_fragment
from core.pagination import newest_first_page

PAGE_SIZE = 50
TIMELINE_SIZE = 200
SHOWN = 100
# Statuses that change on their own (a start or a rotation in progress): the page polls.
MOVING = frozenset({SessionStatus.PENDING, SessionStatus.ROTATING})


class SessionFilterForm(forms.Form):
    status = forms.ChoiceField(choices=[("", "Any status"), *SessionStatus.choices], required=False)
    cursor = forms.CharField(max_length=200, required=False, widget=forms.HiddenInput)


def _session_or_404(request: HttpRequest, session_id: str) -> AgentSession:
    try:
        return session_get(organization_id=request.organization.id, session_id=session_id)
    except NotFound:
        raise Http404("not found") from None


@org_view()
def session_list_view(request: HttpRequest) -> HttpResponse:
    form = SessionFilterForm(request.GET)
    form.is_valid()
    status = form.cleaned_data.get("status") or None
    cursor = form.cleaned_data.get("cursor") or None
    sessions = session_list(organization_id=request.organization.id, status=status)
    page_error = ""
    try:
        page = newest_first_page(sessions, limit=PAGE_SIZE, cursor=cursor)
    except StowageError as exc:
        page_error, cursor = f"{exc.message}; showing the newest sessions instead.", None
        page = newest_first_page(sessions, limit=PAGE_SIZE, cursor=None)
    filters = {"status": status} if status else {}
    final = not any(session.status in MOVING for session in page.rows)
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
        request, "agents/session_list.html", "agents/partials/_session_table.html", context, final=final
    )


@org_view()
def session_detail(request: HttpRequest, session_id: str) -> HttpResponse:
    session = _session_or_404(request, session_id)
    limits = [
        ("Commands", session.exec_count, session.iteration_limit, ""),
        ("Time running", session.duration_seconds(), session.duration_limit_seconds, "s"),
        ("Cost", session.cost_cents, session.cost_cap_cents, "¢"),
    ]
    budget = [
        {
            "label": label,
            "used": used,
            "limit": limit,
            "unit": unit,
            "percent": min(100, round(used * 100 / limit)) if limit else None,
        }
        for label, used, limit, unit in limits
    ]
    events = session_events(session=session, limit=TIMELINE_SIZE)
    context = {
        "session": session,
        "budget": budget,
        "events": events[-SHOWN:][::-1],
        "events_total": session.last_sequence,
        "sandboxes": list(session_sandboxes(session=session)[:SHOWN]),
        "artifacts": list(session_artifacts(session=session)[:SHOWN]),
        "rotations": list(session_rotations(session=session)[:SHOWN]),
        "moving": session.status in MOVING,
        "final": session.status in FINAL_STATUSES,
    }
    return page_or_fragment(
        request,
        "agents/session_detail.html",
        "agents/partials/_session_status.html",
        context,
        final=session.status not in MOVING,
    )


ACTIONS = {
    "pause": lambda actor, session: services.session_pause(actor=actor, session=session),
    "resume": lambda actor, session: services.session_resume(actor=actor, session=session),
    "rotate": lambda actor, session: services.session_rotate(actor=actor, session=session),
    "stop": lambda actor, session: services.session_end(
        actor=actor, session=session, status=SessionStatus.COMPLETED, reason="stopped from the dashboard"
    ),
}
DONE = {
    "pause": "Paused: commands are refused until it resumes.",
    "resume": "Resumed.",
    "rotate": "Moving to a new sandbox; its files come along.",
    "stop": "Stopped. Its sandbox is being removed; its artifacts stay.",
}


@org_view(Role.MEMBER)
@require_POST
def session_action(request: HttpRequest, session_id: str, action: str) -> HttpResponse:
    session = _session_or_404(request, session_id)
    if action not in ACTIONS:
        raise Http404("not found")
    try:
        ACTIONS[action](request.actor, session)
    except StowageError as exc:
        messages.error(request, exc.message)
    else:
        messages.success(request, DONE[action])
    return redirect("session-detail", session_id=session.id)
