"""The dashboard's pages about a path's versions: its aliases (set, move, remove) and the
comparison of two artifacts."""

from __future__ import annotations

from typing import Any

from django.contrib import messages
from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.urls import reverse
from django.utils.cache import add_never_cache_headers
from django.views.decorators.http import require_GET, require_POST

from accounts.access import org_view
from accounts.models import Role
from artifacts.alias_selectors import path_aliases, with_aliases
from artifacts.alias_services import alias_remove, alias_set
from artifacts.diff import artifact_diff
from artifacts.models import Artifact
from artifacts.selectors import artifact_get, artifact_versions
from artifacts.services import artifact_record_read
from artifacts.validation import ALIAS_NAME_RULE
from audit.foreign_ids import audit_foreign_ids
from core.errors import NotFound, StowageError
from core.htmx import page_or_fragment, wants_fragment

VERSIONS_SHOWN = 50


def _artifact(request: HttpRequest, artifact_id: str) -> Artifact:
    try:
        return artifact_get(organization_id=request.organization.id, artifact_id=artifact_id)
    except NotFound:
        raise Http404("not found") from None


def versions_context(request: HttpRequest, artifact: Artifact, **extra: Any) -> dict[str, Any]:
    """What the artifact page's versions table and aliases block show: the newest versions with
    their aliases (two queries), and the path's aliases."""
    versions = list(
        with_aliases(artifact_versions(organization_id=artifact.organization_id, remote_path=artifact.remote_path))[
            : VERSIONS_SHOWN + 1
        ]
    )
    return {
        "artifact": artifact,
        "versions": versions[:VERSIONS_SHOWN],
        "more_versions": len(versions) > VERSIONS_SHOWN,
        "latest_version": versions[0].version if versions else None,
        "path_aliases": path_aliases(organization_id=artifact.organization_id, remote_path=artifact.remote_path),
        "alias_rule": ALIAS_NAME_RULE,
        "alias_error": "",
        "alias_name": "",
        **extra,
    }


def _aliases_answer(request: HttpRequest, artifact: Artifact, *, error: str = "", name: str = "") -> HttpResponse:
    if wants_fragment(request):
        # 200 even with an error: htmx swaps only successful answers, and the error is in the form.
        context = versions_context(request, artifact, alias_error=error, alias_name=name, versions_oob=True)
        response = render(request, "artifacts/partials/_aliases_answer.html", context)
        add_never_cache_headers(response)
        return response
    if error:
        messages.error(request, f"The alias was not set: {error}")
    return redirect(reverse("artifact-detail", args=[artifact.id]) + "#aliases")


@org_view(Role.MEMBER)
@require_POST
def artifact_alias_set(request: HttpRequest, artifact_id: str) -> HttpResponse:
    """Put the alias named in the form on the version chosen in it (a version of this artifact's path)."""
    artifact = _artifact(request, artifact_id)
    name = request.POST.get("name", "").strip()
    target_id = request.POST.get("artifact_id", "") or artifact.id
    try:
        target = artifact_get(organization_id=request.organization.id, artifact_id=target_id[:40])
        alias_set(actor=request.actor, artifact=target, name=name, remote_path=artifact.remote_path)
    except StowageError as exc:
        return _aliases_answer(request, artifact, error=exc.message, name=name[:100])
    if not wants_fragment(request):
        messages.success(request, f"'{name}' is now on version {target.version}.")
    return _aliases_answer(request, artifact)


@org_view(Role.MEMBER)
@require_POST
def artifact_alias_remove(request: HttpRequest, artifact_id: str, name: str) -> HttpResponse:
    artifact = _artifact(request, artifact_id)
    try:
        alias_remove(actor=request.actor, artifact=artifact, name=name)
    except StowageError as exc:
        return _aliases_answer(request, artifact, error=exc.message)
    if not wants_fragment(request):
        messages.success(request, f"Removed the alias '{name}'.")
    return _aliases_answer(request, artifact)


@org_view()
@require_GET
def artifact_compare(request: HttpRequest, artifact_id: str) -> HttpResponse:
    """This artifact against another: a version of its path picked from the list, or any
    artifact of the organization by id. Everything shown is escaped text."""
    artifact = _artifact(request, artifact_id)
    against_id = (request.GET.get("against_id", "").strip() or request.GET.get("against", "").strip())[:40]
    versions = list(
        artifact_versions(organization_id=artifact.organization_id, remote_path=artifact.remote_path).exclude(
            id=artifact.id
        )[:VERSIONS_SHOWN]
    )
    if not against_id and versions:
        older = [v for v in versions if (v.version or 0) < (artifact.version or 0)]
        against_id = (older[0] if older else versions[0]).id
    context: dict[str, Any] = {"artifact": artifact, "versions": versions, "against_id": against_id, "diff": None}
    status = 200
    if against_id:
        try:
            against = artifact_get(organization_id=request.organization.id, artifact_id=against_id)
        except NotFound:
            context["missing"] = True
            status = 404
            audit_foreign_ids(request, request.actor)
        else:
            context["diff"] = artifact_diff(artifact=artifact, against=against)
            artifact_record_read(
                actor=request.actor,
                artifact=artifact,
                action="artifact.compare",
                details={"via": "dashboard", "against": against.id},
            )
    response = page_or_fragment(
        request, "artifacts/artifact_compare.html", "artifacts/partials/_compare_result.html", context
    )
    if not wants_fragment(request):
        # A fragment keeps 200, or htmx would not show the message in it.
        response.status_code = status
    return response
