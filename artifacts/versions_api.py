"""The API of a path's versions: aliases, fetching by path and alias, and comparing two versions."""

from __future__ import annotations

from dataclasses import asdict
from datetime import datetime
from typing import Any

from django.conf import settings
from django.http import HttpRequest
from ninja import Field, Query, Router, Schema

from artifacts import services
from artifacts.alias_selectors import artifact_get_by_path
from artifacts.alias_services import alias_remove, alias_set
from artifacts.api import ArtifactOut, SuccessOut, UrlOut, artifact_out, presigned_url
from artifacts.diff import ArtifactDiff, artifact_diff
from artifacts.selectors import artifact_get
from config.auth import require_scope
from config.schemas import STORAGE, errors
from core.errors import InvalidInput

router = Router(tags=["artifacts"])


class ByPath(Schema):
    # No maxLength: 1024 characters of a path, percent-encoded, can be longer than a request
    # line may be; a path longer than any stored simply names nothing (404).
    remote_path: str
    alias: str | None = Field(None, max_length=100, description="an alias; `latest` (the default) is the newest")
    version: int | None = Field(None, ge=1, le=2**31 - 1, description="a version number instead of an alias")


def _by_path(request: HttpRequest, query: ByPath):
    return artifact_get_by_path(
        organization_id=request.auth.organization_id,
        remote_path=query.remote_path,
        alias=query.alias,
        version=query.version,
    )


@router.get("/artifacts/by-path", response={200: ArtifactOut, **errors(404)})
def get_by_path(request: HttpRequest, query: Query[ByPath]):
    """The version of `remote_path` that `alias` names (the newest without one), or version `version`."""
    require_scope(request.auth, "artifacts:read")
    return artifact_out(_by_path(request, query))


@router.get("/artifacts/by-path/url", response={200: UrlOut, **errors(404, STORAGE)})
def by_path_url(request: HttpRequest, query: Query[ByPath], expires_in: int = 3600):
    """A presigned URL of the version the alias names now: moving the alias later does not change
    what the URL downloads."""
    require_scope(request.auth, "artifacts:read")
    if not 1 <= expires_in <= settings.PRESIGNED_URL_MAX_SECONDS:
        raise InvalidInput(
            f"expires_in must be between 1 and {settings.PRESIGNED_URL_MAX_SECONDS} seconds (7 days)",
            details={"field": "expires_in"},
        )
    artifact = _by_path(request, query)
    url, expires_at = presigned_url(request, artifact, expires_in)
    services.artifact_record_read(
        actor=request.auth,
        artifact=artifact,
        action="artifact.url",
        details={"expires_in": expires_in, "alias": query.alias or ("" if query.version else "latest")},
    )
    return {"url": url, "expires_in": expires_in, "expires_at": expires_at}


class AliasOut(Schema):
    name: str
    remote_path: str
    artifact_id: str
    version: int
    updated_at: datetime
    updated_by: str


def _alias_out(alias, artifact) -> dict:
    return {
        "name": alias.name,
        "remote_path": alias.remote_path,
        "artifact_id": artifact.id,
        "version": artifact.version or 0,
        "updated_at": alias.updated_at,
        "updated_by": alias.updated_by_label,
    }


@router.put("/artifacts/{artifact_id}/aliases/{name}", response={200: AliasOut, **errors(404)})
def put_alias(request: HttpRequest, artifact_id: str, name: str):
    """Put alias `name` of this artifact's path on this artifact, creating it or moving it from another version."""
    require_scope(request.auth, "artifacts:write")
    artifact = artifact_get(organization_id=request.auth.organization_id, artifact_id=artifact_id)
    return _alias_out(alias_set(actor=request.auth, artifact=artifact, name=name), artifact)


@router.delete("/artifacts/{artifact_id}/aliases/{name}", response={200: SuccessOut, **errors(404)})
def delete_alias(request: HttpRequest, artifact_id: str, name: str):
    """Remove alias `name` from this artifact (404 when it is not on this artifact)."""
    require_scope(request.auth, "artifacts:write")
    artifact = artifact_get(organization_id=request.auth.organization_id, artifact_id=artifact_id)
    alias_remove(actor=request.auth, artifact=artifact, name=name)
    return {"success": True}


class AliasIn(Schema):
    remote_path: str = Field(..., max_length=1024)
    name: str = Field(..., max_length=100)
    artifact_id: str = Field(..., max_length=40)
    expected_artifact_id: str | None = Field(
        None, max_length=40, description="move only while the alias is still on this version (409 otherwise)"
    )


@router.post("/aliases", response={200: AliasOut, **errors(404, 409)})
def move_alias(request: HttpRequest, payload: AliasIn):
    """Put alias `name` of `remote_path` on `artifact_id`, a version of that path. Safe to retry."""
    require_scope(request.auth, "artifacts:write")
    artifact = artifact_get(organization_id=request.auth.organization_id, artifact_id=payload.artifact_id)
    alias = alias_set(
        actor=request.auth,
        artifact=artifact,
        name=payload.name,
        remote_path=payload.remote_path,
        expected_artifact_id=payload.expected_artifact_id,
    )
    return _alias_out(alias, artifact)


class FieldChangeOut(Schema):
    field: str
    before: Any
    after: Any


class ValueChangeOut(Schema):
    before: str
    after: str


class MetadataChangesOut(Schema):
    added: dict[str, str]
    removed: dict[str, str]
    changed: dict[str, ValueChangeOut]


class TextDiffOut(Schema):
    status: str = Field(..., description="identical, shown, too_large, binary or unavailable")
    diff: str = Field(..., description="a unified diff, when status is shown")
    truncated: bool


class EntryOut(Schema):
    path: str
    type: str
    size: int
    sha256: str
    mode: int
    target: str


class EntryChangeOut(Schema):
    path: str
    before: EntryOut
    after: EntryOut


class EntryChangesOut(Schema):
    added: list[EntryOut]
    removed: list[EntryOut]
    changed: list[EntryChangeOut]
    complete: bool
    reason: str


class DiffOut(Schema):
    artifact_id: str
    against_id: str
    identical: bool
    changes: list[FieldChangeOut]
    metadata: MetadataChangesOut
    text_diff: TextDiffOut | None
    entries: EntryChangesOut | None


def _entry(entry) -> dict[str, Any]:
    return asdict(entry)


def diff_out(diff: ArtifactDiff) -> dict[str, Any]:
    entries = diff.entries
    return {
        "artifact_id": diff.artifact.id,
        "against_id": diff.against.id,
        "identical": diff.identical,
        "changes": [{"field": c.name, "before": c.before, "after": c.after} for c in diff.fields],
        "metadata": {
            "added": diff.metadata.added,
            "removed": diff.metadata.removed,
            "changed": {key: {"before": b, "after": a} for key, (b, a) in diff.metadata.changed.items()},
        },
        "text_diff": None
        if diff.text is None
        else {"status": diff.text.status, "diff": diff.text.text, "truncated": diff.text.truncated},
        "entries": None
        if entries is None
        else {
            "added": [_entry(e) for e in entries.added],
            "removed": [_entry(e) for e in entries.removed],
            "changed": [{"path": b.path, "before": _entry(b), "after": _entry(a)} for b, a in entries.changed],
            "complete": entries.complete,
            "reason": entries.reason,
        },
    }


@router.get("/artifacts/{artifact_id}/diff", response={200: DiffOut, **errors(404, STORAGE)})
def diff_artifacts(request: HttpRequest, artifact_id: str, against: str = Query(..., max_length=40)):
    """What changed from `against` (before) to this artifact (after): fields, metadata, a unified
    diff of text files up to a bound, a folder's added, removed and changed entries."""
    require_scope(request.auth, "artifacts:read")
    artifact = artifact_get(organization_id=request.auth.organization_id, artifact_id=artifact_id)
    base = artifact_get(organization_id=request.auth.organization_id, artifact_id=against)
    diff = artifact_diff(artifact=artifact, against=base)
    services.artifact_record_read(
        actor=request.auth, artifact=artifact, action="artifact.compare", details={"against": base.id}
    )
    return diff_out(diff)
