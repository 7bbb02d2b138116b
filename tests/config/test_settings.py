from __future__ import annotations

import secrets
import subprocess
import sys
from pathlib import Path

BASE_DIR = Path(__file__).resolve().parents[2]


def manage(*args: str, env: dict[str, str], tmp_path: Path) -> subprocess.CompletedProcess:
    full_env = {"PATH": "/usr/bin:/bin", "STOWAGE_VAR_DIR": str(tmp_path), **env}
    return subprocess.run(
        [sys.executable, "manage.py", *args], cwd=BASE_DIR, env=full_env, capture_output=True, text=True, timeout=120
    )


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


def test_each_apps_api_module_can_be_imported_first(tmp_path):
    """A shell, a task or a script may import an app's router before the API object exists."""
    for module in ("artifacts.api", "shares.api", "accounts.api", "audit.api", "sandboxes.api"):
        code = f"import django; django.setup(); import {module}; import config.urls"
        result = subprocess.run(
            [sys.executable, "-c", code],
            cwd=BASE_DIR,
            capture_output=True,
            text=True,
            timeout=120,
            env={
                "PATH": "/usr/bin:/bin",
                "STOWAGE_VAR_DIR": str(tmp_path),
                "DJANGO_SETTINGS_MODULE": "config.settings",
            },
        )
        assert result.returncode == 0, f"{module}: {result.stderr[-2000:]}"
