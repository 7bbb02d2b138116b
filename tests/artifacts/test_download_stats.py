"""Download statistics: every way of downloading counts once, the flush folds the counts into the
rows without losing one counted meanwhile, and a download still succeeds with Redis down."""

from __future__ import annotations

import secrets
from datetime import timedelta
from urllib.parse import urlsplit

import pytest
from django.contrib.auth import get_user_model
from django.test import Client
from django.utils import timezone

from artifacts import download_stats
from artifacts.download_stats import download_record, download_stats_flush, stats_redis
from artifacts.models import Artifact
from shares.models import ShareLink, ShareLinkState
from shares.services import hash_share_token
from tests.factories import make_artifacts, put_artifact

pytestmark = pytest.mark.django_db


@pytest.fixture
def stats(broker):
    client = stats_redis()
    keys = (
        download_stats.COUNTS_KEY,
        download_stats.TIMES_KEY,
        download_stats.FLUSHING_COUNTS_KEY,
        download_stats.FLUSHING_TIMES_KEY,
        download_stats.FLUSH_LOCK_KEY,
    )
    client.delete(*keys)
    yield client
    client.delete(*keys)


def _counted(artifact_id: str) -> tuple[int, object]:
    download_stats_flush()
    row = Artifact.objects.get(id=artifact_id)
    return row.download_count, row.last_downloaded_at


def _signed_in(user) -> Client:
    client = Client()
    client.force_login(get_user_model().objects.get(username=user.username))
    return client


def test_api_content_download_is_counted(owner, stats):
    artifact = put_artifact(owner, "out/a.txt", b"hello")
    before = timezone.now()
    response = owner.client.get(f"/api/v1/artifacts/{artifact.id}/content", headers=owner.headers())
    assert response.status_code == 200
    assert b"".join(response.streaming_content) == b"hello"
    count, last = _counted(artifact.id)
    assert count == 1 and last >= before


def test_presigned_url_download_is_counted_and_asking_for_the_url_is_not(owner, stats):
    artifact = put_artifact(owner, "out/a.txt", b"hello")
    url = owner.get(f"/artifacts/{artifact.id}/url", {"expires_in": 600}).json()["url"]
    assert _counted(artifact.id)[0] == 0
    parts = urlsplit(url)
    response = Client().get(parts.path + "?" + parts.query)
    assert response.status_code == 200
    assert b"".join(response.streaming_content) == b"hello"
    assert _counted(artifact.id)[0] == 1


def test_dashboard_download_is_counted(owner, stats):
    artifact = put_artifact(owner, "out/a.txt", b"hello")
    response = _signed_in(owner).get(f"/artifacts/{artifact.id}/download/")
    assert response.status_code == 200
    b"".join(response.streaming_content)
    assert _counted(artifact.id)[0] == 1


def test_share_link_download_is_counted(owner, stats):
    artifact = put_artifact(owner, "out/a.txt", b"hello")
    token = secrets.token_urlsafe(24)
    ShareLink.objects.create(
        organization_id=owner.org_id, artifact=artifact, token_hash=hash_share_token(token), state=ShareLinkState.ACTIVE
    )
    response = Client().get(f"/s/{token}/download")
    assert response.status_code == 200
    b"".join(response.streaming_content)
    assert _counted(artifact.id)[0] == 1


def test_previews_are_not_downloads(owner, stats):
    artifact = put_artifact(owner, "out/a.txt", b"hello", content_type="text/plain")
    response = _signed_in(owner).get(f"/artifacts/{artifact.id}/")
    assert response.status_code == 200
    assert _counted(artifact.id)[0] == 0


def test_many_downloads_fold_into_one_row_with_the_latest_time(owner, stats):
    (artifact,) = make_artifacts(owner.org_id, 1)
    now = timezone.now()
    for minutes in (5, 1, 3):
        download_record(artifact_id=artifact.id, at=now - timedelta(minutes=minutes))
    Artifact.objects.filter(id=artifact.id).update(download_count=10, last_downloaded_at=now - timedelta(days=1))
    count, last = _counted(artifact.id)
    assert count == 13
    assert abs((last - (now - timedelta(minutes=1))).total_seconds()) < 0.01


def test_a_flush_with_nothing_counted_changes_nothing(owner, stats):
    (artifact,) = make_artifacts(owner.org_id, 1)
    assert download_stats_flush() == 0
    assert _counted(artifact.id) == (0, None)


def test_a_download_counted_during_a_flush_is_kept_for_the_next(owner, stats, monkeypatch):
    first, second = make_artifacts(owner.org_id, 2)
    download_record(artifact_id=first.id)
    real_fold = download_stats._fold

    def fold_while_downloading(pending):
        # A download arrives after the hand-over, before the counted ones are deleted.
        download_record(artifact_id=first.id)
        download_record(artifact_id=second.id)
        return real_fold(pending)

    monkeypatch.setattr(download_stats, "_fold", fold_while_downloading)
    assert download_stats_flush() == 1
    monkeypatch.setattr(download_stats, "_fold", real_fold)
    assert Artifact.objects.get(id=first.id).download_count == 1
    assert _counted(first.id)[0] == 2
    assert Artifact.objects.get(id=second.id).download_count == 1


def test_a_flush_that_died_is_finished_by_the_next(owner, stats):
    (artifact,) = make_artifacts(owner.org_id, 1)
    download_record(artifact_id=artifact.id)
    # Handed over, then the flusher died before folding.
    stats.rename(download_stats.COUNTS_KEY, download_stats.FLUSHING_COUNTS_KEY)
    stats.rename(download_stats.TIMES_KEY, download_stats.FLUSHING_TIMES_KEY)
    download_record(artifact_id=artifact.id)
    assert _counted(artifact.id)[0] == 1
    assert _counted(artifact.id)[0] == 2


def test_a_second_flusher_waits_for_the_first(owner, stats):
    (artifact,) = make_artifacts(owner.org_id, 1)
    download_record(artifact_id=artifact.id)
    stats.set(download_stats.FLUSH_LOCK_KEY, "1")
    assert download_stats_flush() == 0
    stats.delete(download_stats.FLUSH_LOCK_KEY)
    assert _counted(artifact.id)[0] == 1


def test_with_redis_down_a_download_succeeds_and_is_counted_on_its_row(owner, stats, settings, tmp_path):
    artifact = put_artifact(owner, "out/a.txt", b"hello")
    settings.REDIS_CLIENT_URL = f"unix://{tmp_path / 'nothing.sock'}"
    response = owner.client.get(f"/api/v1/artifacts/{artifact.id}/content", headers=owner.headers())
    assert response.status_code == 200
    assert b"".join(response.streaming_content) == b"hello"
    row = Artifact.objects.get(id=artifact.id)
    assert row.download_count == 1 and row.last_downloaded_at is not None
    assert download_stats.flush_download_stats() == 0


@pytest.mark.worker
def test_a_download_into_a_sandbox_is_counted(owner, sandbox):
    stats_redis().delete(download_stats.COUNTS_KEY, download_stats.TIMES_KEY)
    artifact = put_artifact(owner, "in/data.txt", b"payload")
    response = owner.post(
        f"/sandbox/{sandbox['sandbox_id']}/artifacts/download",
        {"artifact_id": artifact.id, "target_path": "/workspace/data.txt"},
    )
    assert response.status_code == 200, response.content
    assert _counted(artifact.id)[0] == 1


def test_beat_flushes_download_stats_and_snapshots_usage_by_task_name(settings):
    from config.celery import app

    app.loader.import_default_modules()
    scheduled = {entry["task"]: entry["schedule"] for entry in settings.CELERY_BEAT_SCHEDULE.values()}
    assert scheduled["artifacts.flush_download_stats"] == 10
    assert scheduled["usage.snapshot_daily"] == 3600
    assert {"artifacts.flush_download_stats", "usage.snapshot_daily"} <= set(app.tasks)
