from __future__ import annotations

from datetime import datetime
from typing import Any

from django.http import HttpRequest
from ninja import Query, Router, Schema
from pydantic import Field

from audit.models import AuditEvent, Outcome
from audit.selectors import audit_event_list
from config.auth import require_scope
from config.schemas import IsoTime, errors

router = Router(tags=["audit"])


class AuditEventOut(Schema):
    id: str
    timestamp: datetime
    sandbox_id: str
    org_id: str
    user_id: str | None
    api_key_id: str | None
    actor: str
    session_id: str
    action: str
    resource: str
    details: dict[str, Any]
    outcome: str
    error_message: str | None
    duration: int | None
    ip: str | None
    request_id: str
    client_request_id: str


def audit_event_out(event: AuditEvent) -> dict[str, Any]:
    return {
        "id": event.id,
        "timestamp": event.timestamp,
        "sandbox_id": event.sandbox_id,
        "org_id": event.organization_id or "",
        "user_id": str(event.actor_user_id) if event.actor_user_id else None,
        "api_key_id": event.actor_api_key_id,
        "actor": event.actor,
        "session_id": event.session_id,
        "action": event.action,
        "resource": event.resource,
        "details": event.details,
        "outcome": event.outcome,
        "error_message": event.error_message or None,
        "duration": event.duration_ms,
        "ip": event.ip,
        "request_id": event.request_id,
        "client_request_id": event.client_request_id,
    }


class AuditFilters(Schema):
    sandbox_id: str | None = None
    action: str | None = Field(None, max_length=64)
    outcome: Outcome | None = None
    start_time: IsoTime | None = None
    end_time: IsoTime | None = None
    limit: int = Field(100, ge=1, le=1000)
    offset: int = Field(0, ge=0, le=1_000_000)


class AuditListOut(Schema):
    events: list[AuditEventOut]
    total: int


@router.get("/audit", response={200: AuditListOut, **errors()})
def list_audit_events(request: HttpRequest, filters: Query[AuditFilters]):
    require_scope(request.auth, "audit:read")
    events = audit_event_list(
        organization_id=request.auth.organization_id,
        sandbox_id=filters.sandbox_id,
        action=filters.action,
        outcome=filters.outcome,
        start_time=filters.start_time,
        end_time=filters.end_time,
    )
    page = events[filters.offset : filters.offset + filters.limit]
    return {"events": [audit_event_out(e) for e in page], "total": events.count()}
