from __future__ import annotations

import hashlib
import hmac
import os
import stat
import subprocess
import sys
import time
from pathlib import Path

import pytest
from django.conf import settings
from django.utils.crypto import salted_hmac

from audit.models import AuditEvent, Outcome
from config.secret_key import instance_secret_key

BASE_DIR = Path(__file__).resolve().parents[2]
# The development key earlier versions shipped in config/settings.py: public, so it signs nothing.
PUBLISHED_KEY = "stowage-insecure-development-key-do-not-use-in-production"


def _django(code: str, tmp_path: Path, **env: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-c", f"import django; django.setup(); {code}"],
        cwd=BASE_DIR,
        capture_output=True,
        text=True,
        timeout=120,
        env={
            "PATH": "/usr/bin:/bin",
            "STOWAGE_VAR_DIR": str(tmp_path),
            "DJANGO_SETTINGS_MODULE": "config.settings",
            **env,
        },
    )


def test_the_first_run_makes_a_secret_key_only_its_owner_reads_and_later_runs_reuse_it(tmp_path):
    first = _django("from django.conf import settings; print(settings.SECRET_KEY)", tmp_path)
    second = _django("from django.conf import settings; print(settings.SECRET_KEY)", tmp_path)
    assert first.returncode == 0, first.stderr
    key = first.stdout.strip()
    assert len(key) >= 50 and key != PUBLISHED_KEY
    assert second.stdout.strip() == key
    kept = tmp_path / "secret_key"
    assert kept.read_text().strip() == key
    assert stat.S_IMODE(os.stat(kept).st_mode) == 0o600


def test_two_instances_get_different_keys(tmp_path):
    assert instance_secret_key(tmp_path / "a") != instance_secret_key(tmp_path / "b")


@pytest.mark.parametrize(
    "env",
    [
        {"SECRET_KEY": PUBLISHED_KEY},
        {"SECRET_KEY_FALLBACKS": PUBLISHED_KEY},
        {"STOWAGE_URL_SIGNING_KEYS": f"1:{PUBLISHED_KEY}"},
    ],
)
def test_a_published_key_is_refused_wherever_it_is_configured(tmp_path, env):
    result = _django("pass", tmp_path, **env)
    assert result.returncode != 0
    assert "published" in result.stderr


def _forged_query(artifact_id: str, key: str) -> str:
    """A presigned URL as the old code signed it: HMAC over id, expiry and key version 0."""
    derived = salted_hmac("stowage.presigned-url", "key", secret=key, algorithm="sha256").digest()
    expires = int(time.time()) + 365 * 86400
    signature = hmac.new(derived, f"{artifact_id}\n{expires}\n0".encode(), hashlib.sha256).hexdigest()
    return f"expires={expires}&kv=0&sig={signature}"


def test_a_presigned_url_forged_with_the_old_built_in_key_is_refused_and_recorded(owner):
    """Guards the finding that `make run` signed presigned URLs with a SECRET_KEY written in the
    source, so anyone who knew an artifact id could forge a download link lasting a year."""
    assert settings.SECRET_KEY != PUBLISHED_KEY
    put = owner.client.put(
        "/api/v1/artifacts?remote_path=secret/plans.txt",
        b"top secret",
        content_type="text/plain",
        headers=owner.headers(),
    )
    artifact_id = put.json()["id"]
    response = owner.client.get(f"/dl/{artifact_id}?{_forged_query(artifact_id, PUBLISHED_KEY)}")
    assert response.status_code == 403
    assert b"top secret" not in response.content
    refusal = AuditEvent.objects.get(action="artifact.url_refused", outcome=Outcome.DENIED)
    assert refusal.organization_id == owner.org_id
    assert refusal.resource == f"artifact:{artifact_id}"
    assert "signature" in refusal.error_message


def test_an_expired_or_tampered_url_of_no_artifact_goes_to_the_instance_log(client, db, refusal_counters):
    expired = client.get("/dl/art_nothing?expires=1&kv=0&sig=00")
    assert expired.status_code == 403
    event = AuditEvent.objects.get(action="artifact.url_refused")
    assert event.organization_id is None and event.outcome == Outcome.DENIED
    assert "expired" in event.error_message


@pytest.mark.parametrize(
    "env",
    [
        {"SECRET_KEY": "change-me-to-64-random-characters-python-c-import-secrets-token-urlsafe-64"},
        {"SECRET_KEY": "a" * 40 + "-CHANGE-ME-" + "b" * 40},
        {"STOWAGE_URL_SIGNING_KEYS": "v1:change-me-another-long-random-secret"},
    ],
)
def test_a_placeholder_key_from_the_compose_file_or_a_guide_is_refused(tmp_path, env):
    """Guards the finding that the values docker-compose.yml shipped were accepted as keys."""
    result = _django("pass", tmp_path, **env)
    assert result.returncode != 0
    assert "published" in result.stderr


def test_the_compose_file_takes_its_secrets_from_the_environment_and_ships_none():
    import yaml

    text = (BASE_DIR / "docker-compose.yml").read_text()
    compose = yaml.safe_load(text)
    env = compose["x-stowage-env"]
    taken_from = {
        "SECRET_KEY": "SECRET_KEY",
        "STOWAGE_URL_SIGNING_KEYS": "STOWAGE_URL_SIGNING_KEYS",
        "AWS_SECRET_ACCESS_KEY": "MINIO_ROOT_PASSWORD",
    }
    for name, variable in taken_from.items():
        # ":?": compose refuses to start while the variable is unset or empty.
        assert env[name].startswith("${" + variable + ":?"), name
    assert "${POSTGRES_PASSWORD:?" in env["DATABASE_URL"]
    assert "change-me" not in text.lower()
    assert ".env" in (BASE_DIR / ".dockerignore").read_text().split(), "the image must not carry the secrets"
    example = (BASE_DIR / ".env.example").read_text()
    assert all(f"\n{name}=\n" in example for name in ("SECRET_KEY", "STOWAGE_URL_SIGNING_KEYS", "POSTGRES_PASSWORD"))
