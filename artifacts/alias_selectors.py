"""Reads of aliases: an artifact by its path and an alias or version, a path's aliases, and the
prefetch that puts each artifact's aliases on a list in one more query."""

from __future__ import annotations

from django.db.models import Prefetch, QuerySet

from artifacts.models import Artifact, ArtifactAlias
from artifacts.validation import LATEST, check_alias_name
from core.errors import InvalidInput, NotFound


def with_aliases(artifacts: QuerySet[Artifact]) -> QuerySet[Artifact]:
    """The artifacts with their aliases (``artifact.aliases.all()``, by name) fetched in one query for the lot."""
    return artifacts.prefetch_related(aliases_prefetch())


def aliases_prefetch() -> Prefetch:
    """For ``prefetch_related_objects`` on a list already read."""
    return Prefetch("aliases", queryset=ArtifactAlias.objects.order_by("name"))


def alias_names(artifact: Artifact) -> list[str]:
    return [alias.name for alias in artifact.aliases.all()]


def artifact_get_by_path(
    *, organization_id: str, remote_path: str, alias: str | None = None, version: int | None = None
) -> Artifact:
    """The visible version of ``remote_path`` that ``alias`` names (``latest``, the newest, when
    neither is given) or that has number ``version``; the same 404 for another organization's path."""
    if alias is not None and version is not None:
        raise InvalidInput("Give an alias or a version, not both", details={"field": "version"})
    if not remote_path:
        raise InvalidInput("remote_path is required", details={"field": "remote_path"})
    versions = Artifact.objects.visible().filter(organization_id=organization_id, remote_path=remote_path)
    if version is not None:
        found = versions.filter(version=version).first()
        missing = f"'{remote_path}' has no version {version}"
    elif alias is None or alias == LATEST:
        found = versions.order_by("-version").first()
        missing = f"'{remote_path}' has no stored version"
    else:
        check_alias_name(alias)
        found = versions.filter(aliases__name=alias).first()
        missing = f"'{remote_path}' has no alias '{alias}'"
        if found is None:
            raise NotFound(missing, code="ALIAS_NOT_FOUND")
    if found is None:
        raise NotFound(missing, code="ARTIFACT_NOT_FOUND")
    return found


def path_aliases(*, organization_id: str, remote_path: str) -> list[ArtifactAlias]:
    """The aliases of a path, by name, each with its (visible) version."""
    return list(
        ArtifactAlias.objects.filter(organization_id=organization_id, remote_path=remote_path)
        .filter(artifact__in=Artifact.objects.visible())
        .select_related("artifact")
        .order_by("name")
    )
