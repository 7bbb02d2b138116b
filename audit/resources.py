"""An event's resource (``artifact:art_…``, ``sandbox:sbx_…:/workspace/x``, ``apikey:key_…``,
``user:7``) as a link with a name. The names come with the page of events itself, as correlated
subqueries of the organization's own rows, so a page costs one query however many rows it has."""

from __future__ import annotations

from dataclasses import dataclass

from django.db.models import CharField, OuterRef, QuerySet, Subquery
from django.db.models.functions import Substr
from django.urls import reverse

from accounts.models import ApiKey
from artifacts.models import Artifact
from audit.models import AuditEvent

# Every id is a type prefix, an underscore and 25 characters.
ID_LENGTH = 29


def _id_after(kind: str) -> Substr:
    return Substr(OuterRef("resource"), len(kind) + 2, ID_LENGTH)


def with_resource_names(events: QuerySet[AuditEvent]) -> QuerySet[AuditEvent]:
    artifact_path = Artifact.objects.filter(
        organization_id=OuterRef("organization_id"), id=_id_after("artifact")
    ).values("remote_path")[:1]
    key_name = ApiKey.objects.filter(organization_id=OuterRef("organization_id"), id=_id_after("apikey")).values(
        "name"
    )[:1]
    return events.annotate(
        resource_artifact_path=Subquery(artifact_path, output_field=CharField()),
        resource_key_name=Subquery(key_name, output_field=CharField()),
    )


@dataclass(frozen=True)
class ResourceLink:
    kind: str
    label: str
    url: str = ""
    rest: str = ""


def resource_link(event: AuditEvent) -> ResourceLink | None:
    kind, _, rest = event.resource.partition(":")
    object_id, _, tail = rest.partition(":")
    if kind == "artifact" and getattr(event, "resource_artifact_path", None):
        return ResourceLink(kind, event.resource_artifact_path, reverse("artifact-detail", args=[object_id]))
    if kind == "apikey" and getattr(event, "resource_key_name", None):
        return ResourceLink("API key", event.resource_key_name, reverse("apikey-list"))
    if kind == "sandbox" and object_id and event.organization_id:
        return ResourceLink(kind, object_id, reverse("sandbox-detail", args=[object_id]), tail)
    if kind == "user" and isinstance(event.details, dict) and event.details.get("username"):
        return ResourceLink(kind, str(event.details["username"]))
    return None


def attach_resource_links(events: list[AuditEvent]) -> None:
    for event in events:
        event.resource_link = resource_link(event)
