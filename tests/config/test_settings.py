from __future__ import annotations

import secrets
import subprocess
import sys
from pathlib import Path

BASE_DIR = Path(__file__).resolve().parents[2]


def manage(*args: str, env: dict[str, str], tmp_path: Path) -> subprocess.CompletedProcess:
    full_env = {"PATH": "/usr/bin:/bin", "STOWAGE_VAR_DIR": str(tmp_path), **env}
    return subprocess.run([sys.executable, "manage.py", *args], cwd=BASE_DIR, env=full_env, capture_output=True, text=True, timeout=120)


def test_production_mode_refuses_to_start_without_a_real_secret_key(tmp_path):
    for key in ("", "short", "stowage-insecure-development-key-do-not-use-in-production"):
        result = manage("check", env={"STOWAGE_PRODUCTION": "1", "SECRET_KEY": key}, tmp_path=tmp_path)
        assert result.returncode != 0
        assert "SECRET_KEY" in result.stderr


def test_production_settings_pass_the_deployment_checks(tmp_path):
    env = {"STOWAGE_PRODUCTION": "1", "SECRET_KEY": secrets.token_urlsafe(64), "ALLOWED_HOSTS": "stowage.example.com"}
    result = manage("check", "--deploy", "--fail-level", "WARNING", env=env, tmp_path=tmp_path)
    assert result.returncode == 0, result.stdout + result.stderr


def test_development_defaults_need_no_server(tmp_path):
    result = manage("migrate", "--noinput", env={}, tmp_path=tmp_path)
    assert result.returncode == 0, result.stderr
    assert (tmp_path / "stowage.sqlite3").exists()
