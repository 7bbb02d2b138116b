from __future__ import annotations

from datetime import timedelta

import pytest
from django.utils import timezone

from artifacts.models import Artifact, ArtifactAlias
from tests.factories import make_artifact


@pytest.fixture
def versions():
    """``versions(org_id, path, count, days_apart=1, newest_days_ago=0)``: ready versions 1..count
    of ``path``, oldest first, the newest made ``newest_days_ago`` days ago."""

    def make(org_id: str, path: str, count: int, *, days_apart: int = 1, newest_days_ago: int = 0, size: int = 100):
        now = timezone.now()
        return [
            make_artifact(
                org_id,
                None,
                path,
                version=n,
                size=size * n,
                created_at=now - timedelta(days=newest_days_ago + days_apart * (count - n)),
            )
            for n in range(1, count + 1)
        ]

    return make


def hold(artifact: Artifact) -> Artifact:
    Artifact.objects.filter(id=artifact.id).update(legal_hold=True, legal_hold_reason="litigation")
    return artifact


def alias(artifact: Artifact, name: str = "production") -> Artifact:
    ArtifactAlias.objects.create(
        organization_id=artifact.organization_id, remote_path=artifact.remote_path, name=name, artifact=artifact
    )
    return artifact


def states(artifacts) -> list[str]:
    by_id = dict(Artifact.objects.filter(id__in=[a.id for a in artifacts]).values_list("id", "state"))
    return [by_id[a.id] for a in artifacts]
