from __future__ import annotations

import re
from pathlib import Path

import pytest
from django.test import Client, override_settings
from django.urls import reverse

from artifacts.models import Artifact

TEMPLATES = Path(__file__).resolve().parents[2] / "templates"


def policy(response) -> dict[str, str]:
    header = response["Content-Security-Policy"]
    return {part.split()[0]: part for part in (p.strip() for p in header.split(";")) if part}


@pytest.mark.parametrize("name", ["home", "artifact-list", "sandbox-list", "audit-list", "apikey-list", "members-list"])
def test_every_dashboard_page_has_a_policy_without_inline_script(dashboard, name):
    response = dashboard.owner.get(reverse(name))
    assert response.status_code == 200
    directives = policy(response)
    assert directives["script-src"] == "script-src 'self'"
    assert "unsafe-inline" not in response["Content-Security-Policy"]
    assert "unsafe-eval" not in response["Content-Security-Policy"]


def test_the_sign_in_page_has_the_policy_too(client, db):
    assert "script-src 'self'" in client.get(reverse("login"))["Content-Security-Policy"]


def test_no_template_has_an_inline_script_or_event_handler():
    handler = re.compile(r"\son[a-z]+\s*=", re.IGNORECASE)
    inline_script = re.compile(r"<script(?![^>]*\bsrc=)[^>]*>", re.IGNORECASE)
    for template in TEMPLATES.rglob("*.html"):
        text = template.read_text()
        assert not inline_script.search(text), f"{template}: inline <script>"
        assert not handler.search(text), f"{template}: inline event handler"
        assert "hx-on" not in text and "js:" not in text, f"{template}: htmx would need eval"


def test_a_missing_page_is_a_404_inside_the_layout(dashboard):
    response = dashboard.member.get("/artifacts/art_0000000000000000000000000/")
    assert response.status_code == 404
    page = response.content.decode()
    assert "Not found" in page and 'class="topbar"' in page and "Artifacts</a>" in page


def test_a_deleted_artifact_says_when_and_by_whom(dashboard, owner, stranger):
    put = owner.client.put(
        "/api/v1/artifacts?remote_path=old/report.pdf", b"%PDF", content_type="application/pdf", headers=owner.headers()
    )
    artifact_id = put.json()["id"]
    assert owner.delete(f"/artifacts/{artifact_id}").status_code in {200, 204}
    assert Artifact.objects.get(id=artifact_id).state == "trashed"
    page = dashboard.viewer.get(reverse("artifact-detail", args=[artifact_id]))
    assert page.status_code == 404
    text = page.content.decode()
    assert "This artifact was deleted" in text and "old/report.pdf" in text and "api key" in text
    theirs = dashboard.stranger.get(reverse("artifact-detail", args=[artifact_id])).content.decode()
    assert "old/report.pdf" not in theirs and "was deleted" not in theirs


def test_a_user_in_no_organization_is_told_so(db):
    from django.contrib.auth import get_user_model

    client = Client()
    client.force_login(get_user_model().objects.create_user(username="loner"))
    response = client.get(reverse("home"))
    assert response.status_code == 404
    assert "You are not in any organization" in response.content.decode()


def test_a_refusal_is_a_403_inside_the_layout(owner, stranger):
    from django.contrib.auth import get_user_model

    client = Client()
    client.force_login(get_user_model().objects.get(username=stranger.username))
    response = client.get("/admin/", follow=True)
    assert response.status_code == 403
    assert "You may not do that" in response.content.decode() and 'class="topbar"' in response.content.decode()


@override_settings(DEBUG=False)
def test_a_server_error_is_a_500_inside_the_layout_with_the_request_id(dashboard, monkeypatch):
    from accounts import views

    def explode(*args, **kwargs):
        raise RuntimeError("boom")

    monkeypatch.setattr(views, "render", explode)
    dashboard.owner.raise_request_exception = False
    response = dashboard.owner.get(reverse("home"), HTTP_X_REQUEST_ID="req-broken-1")
    assert response.status_code == 500
    page = response.content.decode()
    assert "Something went wrong on our side" in page and "req-broken-1" in page


def _sign_in_page_policy(tmp_path, **env: str) -> dict[str, str]:
    """The policy of the sign-in page of an instance started with this environment."""
    import subprocess
    import sys

    code = (
        "import django; django.setup(); from django.test import Client; "
        "print(Client().get('/login/')['Content-Security-Policy'])"
    )
    result = subprocess.run(
        [sys.executable, "-c", code],
        cwd=TEMPLATES.parent,
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
    assert result.returncode == 0, result.stderr[-2000:]
    return {part.split()[0]: part for part in (p.strip() for p in result.stdout.strip().split(";")) if part}


def test_with_single_sign_on_forms_may_lead_to_the_provider(tmp_path):
    """Signing out posts a form that ends at the provider's end_session_endpoint."""
    sso = {"STOWAGE_OIDC_ISSUER": "https://id.example.com/realms/acme", "STOWAGE_OIDC_CLIENT_ID": "stowage"}
    assert _sign_in_page_policy(tmp_path, **sso)["form-action"] == "form-action 'self' https://id.example.com"
    assert _sign_in_page_policy(tmp_path)["form-action"] == "form-action 'self'"
