"""Single sign-on against a real OpenID provider (django-oauth-toolkit in its own process on
127.0.0.1, tests/oidc_provider/): the browser's part at the provider is played by httpx, the
dashboard's by Django's test client; tokens, keys and user information travel over real HTTP."""

from __future__ import annotations

import json
import re
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import parse_qs, urljoin, urlparse

import httpx
import jwt
import pytest
from django.conf import settings as django_settings
from django.contrib.auth import get_user_model
from django.test import Client
from django.urls import reverse

from accounts.models import Membership, Role, SingleSignOnIdentity
from accounts.sso import claimed_roles
from audit.models import AuditEvent, Outcome
from config.stack import free_port

BASE_DIR = Path(__file__).resolve().parents[2]
CLIENT_ID = "stowage-test"
CLIENT_SECRET = "stowage-test-client-secret"
PASSWORD = "provider-pass-1234"
USERS = ("alice", "bob", "wrong-audience", "wrong-issuer", "wrong-nonce")


@dataclass
class Provider:
    issuer: str
    workdir: Path

    def set_user(self, username: str, *, claims: dict | None = None, id_token: dict | None = None) -> None:
        seed = json.loads((self.workdir / "claims.json").read_text())
        seed["users"][username].update(claims=claims or {}, id_token=id_token or {})
        (self.workdir / "claims.json").write_text(json.dumps(seed))


@pytest.fixture(scope="module")
def provider(tmp_path_factory) -> Iterator[Provider]:
    workdir = tmp_path_factory.mktemp("oidc-provider")
    port = free_port()
    seed = {
        "client": {
            "id": CLIENT_ID,
            "secret": CLIENT_SECRET,
            "redirect_uris": ["http://testserver/sso/callback/"],
            "post_logout_redirect_uris": ["http://testserver/login/"],
        },
        "users": {name: {"password": PASSWORD, "claims": {}, "id_token": {}} for name in USERS},
    }
    (workdir / "claims.json").write_text(json.dumps(seed))
    log = open(workdir / "provider.log", "wb")  # noqa: SIM115 - the child writes it until the end
    process = subprocess.Popen(
        [sys.executable, "-m", "tests.oidc_provider.serve", str(port), str(workdir)],
        cwd=BASE_DIR,
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    issuer = f"http://127.0.0.1:{port}/o"
    try:
        deadline = time.monotonic() + 60
        while True:
            if process.poll() is not None:
                raise RuntimeError("the OpenID provider exited:\n" + (workdir / "provider.log").read_text()[-4000:])
            try:
                if httpx.get(issuer + "/.well-known/openid-configuration", timeout=1).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            if time.monotonic() > deadline:
                raise RuntimeError("the OpenID provider did not answer within 60 s")
            time.sleep(0.2)
        yield Provider(issuer=issuer, workdir=workdir)
    finally:
        process.terminate()
        process.wait(timeout=10)
        log.close()


@pytest.fixture(autouse=True)
def every_refusal_recorded(settings):
    """Every test here signs in from 127.0.0.1, and refusals are recorded up to a limit a minute
    per address: lifted, so each test sees its own refusals whatever ran before it."""
    settings.AUDIT_REFUSALS_PER_SOURCE = settings.AUDIT_REFUSALS_PER_KIND = 10_000


@pytest.fixture
def sso(provider, settings) -> Provider:
    settings.OIDC_ISSUER = provider.issuer
    settings.OIDC_RP_CLIENT_ID = CLIENT_ID
    settings.OIDC_RP_CLIENT_SECRET = CLIENT_SECRET
    for name in USERS:
        provider.set_user(name)
    return provider


class Browser:
    """One person's browser: the dashboard through the test client, the provider over HTTP."""

    def __init__(self) -> None:
        self.stowage = Client()
        self.web = httpx.Client(follow_redirects=False, timeout=10, trust_env=False)

    def start(self) -> str:
        response = self.stowage.get(reverse("sso-start"))
        assert response.status_code == 302, response.content
        return response["Location"]

    def at_provider(self, authorize_url: str, username: str) -> str:
        """Sign in at the provider (if it asks) and come back with the callback URL."""
        response = self.web.get(authorize_url)
        if response.headers["location"].startswith("/accounts/login/"):
            login_url = urljoin(authorize_url, response.headers["location"])
            page = self.web.get(login_url)
            csrf = re.search(r'name="csrfmiddlewaretoken" value="([^"]+)"', page.text).group(1)
            next_url = parse_qs(urlparse(login_url).query)["next"][0]
            signed = self.web.post(
                login_url,
                data={"csrfmiddlewaretoken": csrf, "username": username, "password": PASSWORD, "next": next_url},
            )
            assert signed.status_code == 302, signed.text[:500]
            response = self.web.get(urljoin(login_url, signed.headers["location"]))
        location = response.headers["location"]
        assert location.startswith("http://testserver/sso/callback/"), location
        return location.removeprefix("http://testserver")

    def sign_in(self, username: str):
        return self.stowage.get(self.at_provider(self.start(), username))

    def signed_in_as(self) -> str | None:
        user_id = self.stowage.session.get("_auth_user_id")
        return get_user_model().objects.get(pk=user_id).username if user_id else None


def test_sign_in_makes_an_account_just_in_time_and_maps_roles_from_the_claim(sso, owner):
    sso.set_user("alice", claims={"email": "alice@example.test", "stowage_roles": {owner.org_id: "admin"}})
    # No preferred_username: the account is named after the e-mail address.
    browser = Browser()
    response = browser.sign_in("alice")
    assert response.status_code == 302 and response["Location"] == reverse("home")
    assert browser.signed_in_as() == "alice"
    identity = SingleSignOnIdentity.objects.get(issuer=sso.issuer)
    assert identity.user.email == "alice@example.test" and not identity.user.has_usable_password()
    membership = Membership.objects.get(user=identity.user, organization_id=owner.org_id)
    assert membership.role == Role.ADMIN and membership.managed_by_sso
    assert browser.stowage.get(reverse("members-list")).status_code == 200
    signin = AuditEvent.objects.get(action="auth.signin", organization_id=owner.org_id, actor="alice")
    assert signin.details == {"method": "sso"}


def test_the_claim_changes_and_ends_roles_on_the_next_sign_in(sso, owner):
    sso.set_user("bob", claims={"preferred_username": "bob", "stowage_roles": [f"{owner.org_id}:member"]})
    Browser().sign_in("bob")
    bob = SingleSignOnIdentity.objects.get(issuer=sso.issuer).user
    assert Membership.objects.get(user=bob).role == Role.MEMBER
    sso.set_user("bob", claims={"preferred_username": "bob", "stowage_roles": [f"{owner.org_id}:viewer"]})
    Browser().sign_in("bob")
    assert Membership.objects.get(user=bob).role == Role.VIEWER
    sso.set_user("bob", claims={"preferred_username": "bob", "stowage_roles": []})
    browser = Browser()
    browser.sign_in("bob")
    assert not Membership.objects.filter(user=bob).exists()
    assert browser.stowage.get(reverse("artifact-list")).status_code == 404
    assert SingleSignOnIdentity.objects.count() == 1, "the same account each time"
    assert bob.username == "bob"
    assert AuditEvent.objects.filter(action="member.remove", organization_id=owner.org_id).exists()


def _refused(response, browser: Browser) -> None:
    assert response.status_code == 400
    assert "Single sign-on was refused" in response.content.decode()
    assert browser.signed_in_as() is None


def test_a_token_for_another_audience_is_refused(sso, db):
    sso.set_user("wrong-audience", id_token={"aud": "another-client"})
    browser = Browser()
    _refused(browser.sign_in("wrong-audience"), browser)
    assert not SingleSignOnIdentity.objects.exists()
    event = AuditEvent.objects.get(action="auth.signin", outcome=Outcome.DENIED)
    assert "audience" in event.error_message.lower() or "aud" in event.error_message


def test_a_token_from_another_issuer_is_refused(sso, db):
    sso.set_user("wrong-issuer", id_token={"iss": "http://127.0.0.1:9/o"})
    browser = Browser()
    _refused(browser.sign_in("wrong-issuer"), browser)
    assert not SingleSignOnIdentity.objects.exists()
    assert "issuer" in AuditEvent.objects.get(action="auth.signin").error_message.lower()


def test_a_token_with_another_nonce_is_refused(sso, db):
    sso.set_user("wrong-nonce", id_token={"nonce": "not-this-sign-in"})
    browser = Browser()
    _refused(browser.sign_in("wrong-nonce"), browser)
    assert not SingleSignOnIdentity.objects.exists()


def test_a_callback_with_a_wrong_state_is_refused(sso, db):
    browser = Browser()
    callback = browser.at_provider(browser.start(), "alice")
    forged = re.sub(r"state=[^&]+", "state=forged", callback)
    _refused(browser.stowage.get(forged), browser)
    # The code of that sign-in is not usable later either: the state is used up.
    _refused(browser.stowage.get(forged), browser)
    assert not SingleSignOnIdentity.objects.exists()


def test_a_callback_in_a_browser_that_never_started_is_refused(sso, db):
    callback = Browser().at_provider(Browser().start(), "alice")
    stranger = Browser()
    _refused(stranger.stowage.get(callback), stranger)


def test_sign_out_ends_the_session_here_and_at_the_provider(sso, owner):
    sso.set_user("alice", claims={"stowage_roles": {owner.org_id: "member"}})
    browser = Browser()
    browser.sign_in("alice")
    response = browser.stowage.post(reverse("logout"))
    assert browser.signed_in_as() is None
    assert response.status_code == 302 and response["Location"].startswith(sso.issuer + "/logout/")
    back = browser.web.get(response["Location"])
    assert back.status_code == 302 and back.headers["location"] == "http://testserver/login/"
    # The provider asks for the password again: its session ended too.
    again = browser.web.get(browser.start())
    assert again.headers["location"].startswith("/accounts/login/")
    assert AuditEvent.objects.filter(action="auth.signout", organization_id=owner.org_id).exists()


def test_password_sign_in_off_leaves_single_sign_on(sso, owner, settings):
    settings.PASSWORD_SIGN_IN = False
    page = Client().get(reverse("login")).content.decode()
    assert reverse("sso-start") in page and 'name="password"' not in page
    sso.set_user("alice", claims={"preferred_username": "alice", "stowage_roles": {owner.org_id: "viewer"}})
    browser = Browser()
    browser.sign_in("alice")
    assert browser.signed_in_as() == "alice"


def test_without_an_issuer_single_sign_on_is_not_offered(client, db):
    assert django_settings.OIDC_ISSUER == ""
    assert client.get(reverse("sso-start")).status_code == 404
    assert reverse("sso-start") not in client.get(reverse("login")).content.decode()


def test_the_roles_claim_reads_a_mapping_or_a_list():
    assert claimed_roles({"org_a": "admin", "org_b": "emperor"}) == {"org_a": Role.ADMIN}
    assert claimed_roles(["org_a:viewer", "junk"]) == {"org_a": Role.VIEWER}
    assert claimed_roles(None) is None


# --- deactivated accounts, stray calls of the backend, providers that fail -----------------------


def test_a_deactivated_account_loses_its_single_sign_on_session(sso, owner):
    """Guards the finding that a deactivated account kept the sessions single sign-on gave it."""
    sso.set_user("alice", claims={"preferred_username": "alice", "stowage_roles": {owner.org_id: "member"}})
    browser = Browser()
    browser.sign_in("alice")
    assert browser.stowage.get(reverse("artifact-list")).status_code == 200
    get_user_model().objects.filter(username="alice").update(is_active=False)
    response = browser.stowage.get(reverse("artifact-list"))
    assert response.status_code == 302 and response["Location"].startswith(reverse("login"))


def test_a_deactivated_account_is_refused_before_the_claim_changes_anything(sso, owner):
    sso.set_user("alice", claims={"preferred_username": "alice", "stowage_roles": {owner.org_id: "viewer"}})
    Browser().sign_in("alice")
    alice = get_user_model().objects.get(username="alice")
    get_user_model().objects.filter(pk=alice.pk).update(is_active=False)
    sso.set_user("alice", claims={"preferred_username": "alice", "stowage_roles": {owner.org_id: "admin"}})
    browser = Browser()
    response = browser.sign_in("alice")
    assert response.status_code == 403 and "deactivated" in response.content.decode()
    assert browser.signed_in_as() is None
    assert Membership.objects.get(user=alice).role == Role.VIEWER
    refusal = AuditEvent.objects.get(action="auth.signin", outcome=Outcome.DENIED)
    assert "deactivated" in refusal.error_message and refusal.organization_id == owner.org_id


def test_the_backend_ignores_a_code_that_came_without_this_sign_ins_nonce_and_verifier(settings, db, monkeypatch):
    from django.test import RequestFactory

    from accounts import oidc

    settings.OIDC_ISSUER, settings.OIDC_RP_CLIENT_ID = "http://127.0.0.1:9/o", CLIENT_ID
    monkeypatch.setattr(oidc, "provider_metadata", lambda: pytest.fail("the provider was asked"))
    request = RequestFactory().get("/login/", {"code": "stolen", "state": "any"})
    assert oidc.SingleSignOnBackend().authenticate(request) is None
    assert oidc.SingleSignOnBackend().authenticate(request, nonce="n") is None
    assert oidc.SingleSignOnBackend().authenticate(request, username="alice", password="x") is None
    sign_in = Client().post(reverse("login") + "?code=stolen&state=any", {"username": "alice", "password": "x"})
    assert sign_in.status_code == 200


def _closed_port_issuer() -> str:
    return f"http://127.0.0.1:{free_port()}/o"


def test_an_unreachable_provider_is_a_502_page_when_signing_in_starts(settings, db):
    from accounts import oidc

    settings.OIDC_ISSUER, settings.OIDC_RP_CLIENT_ID = _closed_port_issuer(), CLIENT_ID
    oidc._discovered.clear()
    response = Client().get(reverse("sso-start"))
    assert response.status_code == 502
    assert "Single sign-on" in response.content.decode()
    assert AuditEvent.objects.get(action="auth.signin").organization_id is None


def test_a_provider_gone_by_the_callback_is_a_502_page(sso, db, settings):
    from accounts import oidc

    browser = Browser()
    callback = browser.at_provider(browser.start(), "alice")
    settings.OIDC_ISSUER = _closed_port_issuer()
    oidc._discovered.pop(settings.OIDC_ISSUER, None)
    response = browser.stowage.get(callback)
    assert response.status_code == 502 and browser.signed_in_as() is None
    assert AuditEvent.objects.filter(action="auth.signin", outcome=Outcome.FAILURE).exists()


@pytest.mark.parametrize(
    "error, status",
    [(jwt.PyJWKError("the key cannot be read"), 400), (jwt.DecodeError("not a token"), 400), (KeyError("keys"), 502)],
    ids=["unreadable key", "malformed token", "keys missing"],
)
def test_a_token_or_key_that_cannot_be_read_is_a_refusal_page_not_a_500(sso, db, monkeypatch, error, status):
    from accounts import oidc

    def broken(self, token):
        raise error

    monkeypatch.setattr(oidc.SingleSignOnBackend, "retrieve_matching_jwk", broken)
    browser = Browser()
    response = browser.sign_in("alice")
    assert response.status_code == status and "Single sign-on" in response.content.decode()
    assert browser.signed_in_as() is None and not SingleSignOnIdentity.objects.exists()
    assert AuditEvent.objects.filter(action="auth.signin").exclude(outcome=Outcome.SUCCESS).exists()
