"""Another organization's id asked for: answered with the same 404 as a missing one, and recorded
as ``denied`` in the asking organization's log (which never learns whose the id is)."""

from __future__ import annotations

import json
from functools import lru_cache

from django.apps import apps
from django.db import models
from django.http import HttpRequest
from django.http.request import RawPostDataException

from audit.refusals import audit_refusal
from core.actor import Actor

FOREIGN_ID = "auth.foreign_id"


@lru_cache(maxsize=1)
def _models_by_prefix() -> dict[str, type[models.Model]]:
    """Every organization-owned model whose ids carry a type prefix (``sbx_``, ``art_``), found
    by making one id with the model's own default, so a model that moves apps is still found."""
    found: dict[str, type[models.Model]] = {}
    for model in apps.get_models():
        pk = model._meta.pk
        if not isinstance(pk, models.CharField) or not callable(pk.default):
            continue
        if "organization" not in {field.name for field in model._meta.fields}:
            continue
        sample = pk.default()
        if isinstance(sample, str) and "_" in sample:
            found[sample.split("_", 1)[0]] = model
    return found


def foreign_ids(*, organization_id: str, values: list[str]) -> list[tuple[str, str]]:
    """(kind, id) of each value that is an id of a row of another organization."""
    found = []
    for value in values:
        model = _models_by_prefix().get(value.split("_", 1)[0]) if "_" in value else None
        if model is None:
            continue
        if model.objects.filter(pk=value).exclude(organization_id=organization_id).exists():
            found.append((model._meta.model_name, value))
    return found


def _body_values(request: HttpRequest) -> list:
    """The top-level values of a small JSON body, where an API request names the rows it uses."""
    length = str(request.META.get("CONTENT_LENGTH") or "0")
    if request.content_type != "application/json" or not length.isdigit() or int(length) > 65536:
        return []
    try:
        body = json.loads(request.body)
    except (RawPostDataException, ValueError):
        return []
    return list(body.values()) if isinstance(body, dict) else []


def audit_foreign_ids(request: HttpRequest, actor: Actor | None) -> None:
    """After a 404: record each id in the URL (its path or its query, such as a diff's
    ``against``) or the JSON body that belongs to another organization."""
    match = getattr(request, "resolver_match", None)
    # An Actor: the API's callers are, the dashboard's are once org_view has let them in.
    if not isinstance(actor, Actor) or not actor.organization_id or match is None:
        return
    values = [
        value
        for value in [*match.kwargs.values(), *request.GET.values(), *_body_values(request)]
        if isinstance(value, str)
    ]
    values = [value for value in values if len(value) <= 64]
    for kind, object_id in foreign_ids(organization_id=actor.organization_id, values=values):
        audit_refusal(
            actor=actor,
            action=FOREIGN_ID,
            reason=f"the {kind} belongs to another organization",
            organization_id=actor.organization_id,
            resource=f"{kind}:{object_id}",
            details={"method": request.method, "path": request.path[:500]},
        )
