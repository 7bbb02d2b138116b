"""Setting, moving and removing a version's aliases. Each change is one transaction holding the
alias row's lock, with its audit event, so concurrent moves of one alias line up one after
another and every event's ``from`` is the version the previous one moved it ``to``."""

from __future__ import annotations

from django.db import IntegrityError, transaction
from django.utils import timezone

from artifacts.models import Artifact, ArtifactAlias
from artifacts.validation import check_alias_name
from audit.services import audit_record
from core.actor import Actor
from core.errors import Conflict, InvalidInput, NotFound


def _event(actor: Actor, action: str, alias_name: str, remote_path: str, organization_id: str, **details) -> None:
    audit_record(
        actor=actor,
        action=action,
        resource=f"alias:{remote_path}@{alias_name}",
        details={"remote_path": remote_path, "alias": alias_name, **details},
        organization_id=organization_id,
    )


def _version(artifact_id: str) -> dict[str, object]:
    version = Artifact.objects.filter(id=artifact_id).values_list("version", flat=True).first()
    return {"artifact_id": artifact_id, "version": version}


def alias_set(
    *,
    actor: Actor,
    artifact: Artifact,
    name: str,
    remote_path: str | None = None,
    expected_artifact_id: str | None = None,
) -> ArtifactAlias:
    """Point alias ``name`` of ``remote_path`` (the artifact's own by default) at ``artifact``,
    creating it or moving it from another version: one step, audited as ``artifact.alias.move``.
    Setting it where it already is changes nothing. ``expected_artifact_id`` makes it a
    compare-and-set: the move happens only while the alias is still on that version."""
    check_alias_name(name)
    remote_path = artifact.remote_path if remote_path is None else remote_path
    if remote_path != artifact.remote_path:
        raise InvalidInput(
            f"Artifact '{artifact.id}' is a version of '{artifact.remote_path}', not of '{remote_path}': "
            "an alias names a version of its own path",
            code="ALIAS_PATH_MISMATCH",
            details={"field": "artifact_id"},
        )
    key = {"organization_id": artifact.organization_id, "remote_path": remote_path, "name": name}
    with transaction.atomic():
        # Locked first, so that the version checked below cannot be deleted before the alias is on it.
        target = Artifact.objects.visible().select_for_update().filter(id=artifact.id).first()
        if target is None:
            raise NotFound(f"Artifact '{artifact.id}' not found", code="ARTIFACT_NOT_FOUND")
        alias = ArtifactAlias.objects.select_for_update().filter(**key).first()
        if alias is None and expected_artifact_id is None:
            try:
                with transaction.atomic():
                    alias = ArtifactAlias.objects.create(artifact=target, **key, **_updated_by(actor))
            except IntegrityError:
                # Another request made it first; move it from where that one put it.
                alias = ArtifactAlias.objects.select_for_update().get(**key)
            else:
                _event(
                    actor,
                    "artifact.alias.move",
                    name,
                    remote_path,
                    artifact.organization_id,
                    **{"from": None, "to": {"artifact_id": target.id, "version": target.version}},
                )
                return alias
        if expected_artifact_id is not None and (alias is None or alias.artifact_id != expected_artifact_id):
            raise Conflict(
                f"Alias '{name}' is no longer on '{expected_artifact_id}'",
                code="ALIAS_CHANGED",
                details={"current_artifact_id": alias.artifact_id if alias else None},
            )
        if alias.artifact_id == target.id:
            return alias
        previous = alias.artifact_id
        alias.artifact = target
        alias.updated_at = timezone.now()
        for field, value in _updated_by(actor).items():
            setattr(alias, field, value)
        alias.save()
        _event(
            actor,
            "artifact.alias.move",
            name,
            remote_path,
            artifact.organization_id,
            **{"from": _version(previous), "to": {"artifact_id": target.id, "version": target.version}},
        )
        return alias


def _updated_by(actor: Actor) -> dict[str, object]:
    return {
        "updated_by_user_id": actor.user_id,
        "updated_by_api_key_id": actor.api_key_id,
        "updated_by_label": actor.label[:200],
    }


def alias_remove(*, actor: Actor, artifact: Artifact, name: str) -> None:
    """Remove alias ``name`` from ``artifact``; 404 when the artifact does not carry it (also
    when it has just been moved to another version, which keeps it)."""
    check_alias_name(name)
    with transaction.atomic():
        alias = (
            ArtifactAlias.objects.select_for_update()
            .filter(organization_id=artifact.organization_id, remote_path=artifact.remote_path, name=name)
            .first()
        )
        if alias is None or alias.artifact_id != artifact.id:
            raise NotFound(f"Artifact '{artifact.id}' has no alias '{name}'", code="ALIAS_NOT_FOUND")
        alias.delete()
        _event(
            actor,
            "artifact.alias.delete",
            name,
            artifact.remote_path,
            artifact.organization_id,
            **{"from": {"artifact_id": artifact.id, "version": artifact.version}, "reason": "requested"},
        )


def aliases_drop_for_artifact(*, actor: Actor, artifact: Artifact, reason: str) -> None:
    """The aliases of an artifact being deleted go with it, each audited; call inside the
    deleting transaction. They are not moved to another version: where an alias pointed is a
    decision someone made, and a guess could send ``production`` to a version nobody chose."""
    for alias in ArtifactAlias.objects.select_for_update().filter(artifact_id=artifact.id).order_by("name"):
        alias.delete()
        _event(
            actor,
            "artifact.alias.delete",
            alias.name,
            alias.remote_path,
            artifact.organization_id,
            **{"from": {"artifact_id": artifact.id, "version": artifact.version}, "reason": f"artifact {reason}"},
        )
