"""Bad input of every kind, sent to every family of endpoints: the API with a key, the dashboard's
JSON endpoints and forms signed in, and the public share landing page. Each gets a 4xx with the
usual error body (a readable page for a browser's page) and nothing is stored."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any

import pytest
from django.conf import settings
from django.contrib.auth import get_user_model
from django.core.files.uploadedfile import SimpleUploadedFile
from django.db.models import Sum
from django.test import Client
from django.urls import reverse
from django.utils import timezone

from accounts.models import ApiKey
from artifacts.models import Artifact
from audit.models import AuditEvent
from core.actor import Actor
from sandboxes.models import Sandbox, SandboxStatus
from shares.models import ShareLink
from shares.services import share_link_create
from shares.worker import share_link_activate
from transfers.models import Transfer

SURROGATE = "\\ud800"  # as JSON writes it: one half of a pair, alone
PAGE = {"HTTP_ACCEPT": "text/html,application/xhtml+xml,*/*;q=0.8"}


@dataclass
class World:
    api: Client
    dashboard: Client
    public: Client
    ids: dict[str, str] = field(default_factory=dict)


@pytest.fixture
def world(owner, dashboard, broker) -> World:
    now = timezone.now()
    sandbox = Sandbox.objects.create(
        organization_id=owner.org_id,
        host=settings.STOWAGE_HOST,
        status=SandboxStatus.RUNNING,
        cpus="1",
        memory="1Gi",
        memory_bytes=1 << 30,
        expires_at=now + timedelta(hours=1),
    )
    put = owner.client.put(
        "/api/v1/artifacts?remote_path=kept.txt", b"kept", content_type="text/plain", headers=owner.headers()
    )
    artifact = Artifact.objects.get(id=put.json()["id"])
    actor = Actor.system(owner.org_id)
    link, token = share_link_create(actor=actor, artifact=artifact, wait=False)
    share_link_activate(share_id=link.id, actor=actor)
    api = Client(headers=owner.headers())
    return World(
        api=api,
        dashboard=dashboard.owner,
        public=Client(),
        ids={"sandbox": sandbox.id, "artifact": artifact.id, "token": token},
    )


def stored() -> dict[str, Any]:
    return {
        "api keys": ApiKey.objects.count(),
        "sandboxes": Sandbox.objects.count(),
        "artifacts": Artifact.objects.count(),
        "transfers": Transfer.objects.count(),
        "share links": ShareLink.objects.count(),
        "share downloads": ShareLink.objects.aggregate(n=Sum("download_count"))["n"],
        "audit events": AuditEvent.objects.count(),
    }


def error_of(response) -> dict[str, Any]:
    assert response["Content-Type"] == "application/json", response.content[:300]
    body = response.json()
    assert set(body) == {"error"} and set(body["error"]) == {"code", "message", "request_id", "details"}, body
    assert body["error"]["message"] and body["error"]["request_id"] == response["X-Request-Id"], body
    return body["error"]


# --- JSON bodies ---------------------------------------------------------------------------------

# Whatever the endpoint: the body is refused before anything reads a field of it.
NOT_AN_OBJECT = {
    "a list": b"[]",
    "a number": b"5",
    "null": b"null",
    "a string": b'"text"',
    "broken JSON": b'{"name": ',
    "NaN": b'{"name": NaN}',
    "invalid UTF-8": b'{"name": "\xff\xfe"}',
    "a surrogate written as UTF-8 bytes": b'{"name": "\xed\xa0\x80"}',
    "nesting deeper than any parser follows": b'{"a": ' + b"[" * 100_000 + b"]" * 100_000 + b"}",
}


@dataclass(frozen=True)
class JsonEndpoint:
    name: str
    client: str
    method: str
    url: str
    body: dict[str, Any]
    text: tuple[str, ...] = ()  # dotted paths to strings in body
    numbers: tuple[str, ...] = ()  # dotted paths to integers in body
    sizes: tuple[str, ...] = ()  # the integers among them for which a huge one is too large, not invalid


JSON_ENDPOINTS = [
    JsonEndpoint(
        "api: create an API key", "api", "post", "/api/v1/api-keys", {"name": "ci"}, ("name",), ("expires_in_days",)
    ),
    JsonEndpoint(
        "api: create a sandbox",
        "api",
        "post",
        "/api/v1/sandbox/create",
        {"env": {"A": "b"}, "session_id": "s"},
        ("env.A", "session_id"),
        ("timeout_seconds",),
    ),
    JsonEndpoint(
        "api: execute",
        "api",
        "post",
        "/api/v1/sandbox/{sandbox}/execute",
        {"command": "true", "env": {"A": "b"}, "working_dir": "/workspace"},
        ("command", "env.A", "working_dir"),
        ("timeout",),
    ),
    JsonEndpoint(
        "api: write files",
        "api",
        "post",
        "/api/v1/sandbox/{sandbox}/files",
        {"files": [{"path": "a.txt", "content": "eA=="}]},
        ("files.0.path",),
    ),
    JsonEndpoint(
        "api: extend a sandbox",
        "api",
        "post",
        "/api/v1/sandbox/{sandbox}/extend",
        {"additional_seconds": 60},
        (),
        ("additional_seconds",),
    ),
    JsonEndpoint(
        "api: save an artifact from a sandbox",
        "api",
        "post",
        "/api/v1/sandbox/{sandbox}/artifacts/upload",
        {"path": "a.txt", "remote_path": "out/a.txt", "metadata": {"k": "v"}},
        ("path", "remote_path", "metadata.k"),
        ("expires_in",),
    ),
    JsonEndpoint(
        "api: share an artifact",
        "api",
        "post",
        "/api/v1/artifacts/{artifact}/shares",
        {"password": "long enough"},
        ("password",),
        ("expires_in", "max_downloads"),
    ),
    JsonEndpoint(
        "dashboard: check an upload",
        "dashboard",
        "post",
        "/artifacts/upload/check/",
        {"remote_path": "a.txt", "size": 1, "metadata": {"k": "v"}},
        ("remote_path", "metadata.k"),
        ("size",),
        ("size",),
    ),
    JsonEndpoint(
        "dashboard: begin a direct upload",
        "dashboard",
        "post",
        "/artifacts/upload/direct/",
        {"remote_path": "a.txt", "size": 1, "metadata": {"k": "v"}},
        ("remote_path", "metadata.k"),
    ),
]


def with_value(body: dict[str, Any], dotted: str, value: Any) -> dict[str, Any]:
    copy = json.loads(json.dumps(body))
    *parents, last = dotted.split(".")
    target = copy
    for part in parents:
        target = target[int(part)] if isinstance(target, list) else target[part]
    if isinstance(target, list):
        target[int(last)] = value
    else:
        target[last] = value
    return copy


def raw_json(body: dict[str, Any], dotted: str, raw_value: str) -> bytes:
    """The body with the value at ``dotted`` written as raw JSON text (an escape json.dumps would not make)."""
    marker = "\u2603marker\u2603"
    return json.dumps(with_value(body, dotted, marker)).replace(json.dumps(marker), raw_value).encode()


def json_cases() -> list[Any]:
    cases = []
    for endpoint in JSON_ENDPOINTS:
        for kind, raw in NOT_AN_OBJECT.items():
            cases.append(pytest.param(endpoint, raw, 400, "INVALID_JSON", id=f"{endpoint.name}: {kind}"))
        for path in endpoint.text:
            raw = raw_json(endpoint.body, path, f'"a{SURROGATE}b"')
            cases.append(
                pytest.param(endpoint, raw, 400, "INVALID_TEXT", id=f"{endpoint.name}: lone surrogate in {path}")
            )
        nested = raw_json(endpoint.body, "deep", '{"x": [1, {"y": "' + SURROGATE + '"}]}')
        cases.append(pytest.param(endpoint, nested, 400, "INVALID_TEXT", id=f"{endpoint.name}: lone surrogate, nested"))
        as_key = raw_json(endpoint.body, "deep", '{"' + SURROGATE + '": "v"}')
        cases.append(
            pytest.param(endpoint, as_key, 400, "INVALID_TEXT", id=f"{endpoint.name}: lone surrogate in a key")
        )
        for path in endpoint.numbers:
            for kind, value in (("true", True), ("a float", 1.5), ("a huge integer", 10**30), ("a string", "10")):
                raw = json.dumps(with_value(endpoint.body, path, value)).encode()
                too_large = value == 10**30 and path in endpoint.sizes
                status, code = (413, "FILE_TOO_LARGE") if too_large else (400, "VALIDATION_ERROR")
                cases.append(pytest.param(endpoint, raw, status, code, id=f"{endpoint.name}: {kind} as {path}"))
    return cases


@pytest.mark.parametrize(("endpoint", "raw", "status", "code"), json_cases())
def test_a_bad_json_body_gets_a_4xx_error_body_and_stores_nothing(world, endpoint, raw, status, code):
    client = getattr(world, endpoint.client)
    before = stored()
    response = getattr(client, endpoint.method)(endpoint.url.format(**world.ids), raw, content_type="application/json")
    assert response.status_code == status, response.content[:500]
    assert error_of(response)["code"] == code
    assert stored() == before


@pytest.mark.parametrize("endpoint", JSON_ENDPOINTS, ids=[e.name for e in JSON_ENDPOINTS])
def test_a_json_body_over_the_limit_gets_413(world, endpoint, settings):
    settings.API_MAX_BODY_BYTES = 1000
    client = getattr(world, endpoint.client)
    before = stored()
    body = json.dumps({**endpoint.body, "padding": "x" * 2000})
    response = getattr(client, endpoint.method)(endpoint.url.format(**world.ids), body, content_type="application/json")
    assert response.status_code == 413, response.content[:500]
    assert error_of(response)["code"] == "PAYLOAD_TOO_LARGE"
    assert stored() == before


def test_a_json_body_over_djangos_own_limit_gets_413_too(world, settings):
    settings.DATA_UPLOAD_MAX_MEMORY_SIZE = 1000
    for client, url in ((world.api, "/api/v1/api-keys"), (world.dashboard, "/artifacts/upload/check/")):
        response = client.post(url, json.dumps({"name": "x" * 2000}), content_type="application/json")
        assert response.status_code == 413 and error_of(response)["code"] == "PAYLOAD_TOO_LARGE"


def test_a_surrogate_pair_is_text_and_is_taken(world):
    response = world.api.post("/api/v1/api-keys", b'{"name": "ci \\ud83d\\ude00"}', content_type="application/json")
    assert response.status_code == 201, response.content
    assert ApiKey.objects.get(id=response.json()["api_key"]["id"]).name == "ci \U0001f600"


# --- query strings, paths, headers ---------------------------------------------------------------

BAD_HEADER = "\xff\xfe"  # as the server hands them over: Latin-1 for bytes that are not UTF-8
REQUESTS = [
    # (name, client, method, url, extra, status, code)
    ("api: invalid UTF-8 in a query", "api", "get", "/api/v1/artifacts?prefix=%FF%FE", {}, 400, "INVALID_TEXT"),
    ("api: NUL in a query", "api", "get", "/api/v1/artifacts?session_id=%00", {}, 400, "INVALID_TEXT"),
    ("api: a surrogate in a query", "api", "get", "/api/v1/audit?action=%ED%A0%80", {}, 400, "INVALID_TEXT"),
    ("api: true as a bounded integer", "api", "get", "/api/v1/audit?limit=true", {}, 400, "VALIDATION_ERROR"),
    ("api: a float as a bounded integer", "api", "get", "/api/v1/artifacts?limit=1e400", {}, 400, "VALIDATION_ERROR"),
    ("api: a huge integer", "api", "get", "/api/v1/audit?offset=" + "9" * 40, {}, 400, "VALIDATION_ERROR"),
    ("api: a number as a time", "api", "get", "/api/v1/audit?start_time=0.5", {}, 400, "VALIDATION_ERROR"),
    ("api: NUL in a path", "api", "get", "/api/v1/artifacts/art_%00", {}, 400, "INVALID_TEXT"),
    ("api: a made-up cursor", "api", "get", "/api/v1/artifacts?cursor=WyJcdWQ4MDAiXQ", {}, 400, "INVALID_CURSOR"),
    ("api: X-Org-Id not UTF-8", "api", "get", "/api/v1/artifacts", {"HTTP_X_ORG_ID": BAD_HEADER}, 400, "INVALID_TEXT"),
    (
        "api: Authorization not UTF-8",
        "public",
        "get",
        "/api/v1/artifacts",
        {"HTTP_AUTHORIZATION": "Bearer " + BAD_HEADER},
        400,
        "INVALID_TEXT",
    ),
    (
        "dashboard: invalid UTF-8 in a JSON endpoint's query",
        "dashboard",
        "put",
        "/artifacts/upload/stream/?remote_path=%FF",
        {},
        400,
        "INVALID_TEXT",
    ),
    (
        "dashboard: NUL in a JSON endpoint's path",
        "dashboard",
        "get",
        "/artifacts/upload/direct/%00/",
        {},
        400,
        "INVALID_TEXT",
    ),
]


@pytest.mark.parametrize(
    ("client", "method", "url", "extra", "status", "code"), [pytest.param(*r[1:], id=r[0]) for r in REQUESTS]
)
def test_a_bad_query_path_or_header_gets_a_4xx_error_body_and_stores_nothing(
    world, client, method, url, extra, status, code
):
    before = stored()
    response = getattr(getattr(world, client), method)(url.format(**world.ids), **extra)
    assert response.status_code == status, response.content[:500]
    assert error_of(response)["code"] == code
    assert stored() == before


METADATA_HEADERS = {
    "a lone surrogate in a value": '{"k": "' + SURROGATE + '"}',
    "a lone surrogate in a key": '{"' + SURROGATE + '": "v"}',
    "bytes that are not UTF-8": '{"k": "\xff"}',
    "a list": '["k", "v"]',
    "NaN": '{"k": NaN}',
    "nesting deeper than any parser follows": "[" * 5000 + "]" * 5000,
    "NUL": '{"k": "\\u0000"}',
}
UPLOADS = {"api": "/api/v1/artifacts?remote_path=new.txt", "dashboard": "/artifacts/upload/stream/?remote_path=new.txt"}


@pytest.mark.parametrize("client", sorted(UPLOADS))
@pytest.mark.parametrize("header", list(METADATA_HEADERS.values()), ids=list(METADATA_HEADERS))
def test_bad_metadata_in_the_upload_header_is_refused_and_stores_nothing(world, client, header):
    before = stored()
    response = getattr(world, client).put(
        UPLOADS[client], b"data", content_type="text/plain", HTTP_X_ARTIFACT_METADATA=header
    )
    assert response.status_code == 400, response.content[:500]
    assert error_of(response)["code"] in {"INVALID_METADATA", "INVALID_TEXT"}
    assert stored() == before


def test_metadata_in_the_upload_header_may_be_utf_8(world):
    header = '{"model": "señor"}'.encode().decode("latin-1")
    response = world.api.put(UPLOADS["api"], b"data", content_type="text/plain", HTTP_X_ARTIFACT_METADATA=header)
    assert response.status_code == 201 and response.json()["metadata"] == {"model": "señor"}


# --- dashboard pages and forms ----------------------------------------------------------------------

FORMS = [
    # (name, client, url, form body, what the page says)
    ("a new API key, invalid UTF-8", "dashboard", "/keys/new/", "name=%FF&scopes=audit%3Aread", "not UTF-8"),
    ("a new API key, NUL", "dashboard", "/keys/new/", "name=a%00b&scopes=audit%3Aread", "NUL"),
    (
        "a share link, invalid UTF-8 password",
        "dashboard",
        "/artifacts/{artifact}/shares/new/",
        "expires_in=3600&password=%C3",
        "not UTF-8",
    ),
    ("save from a sandbox, NUL path", "dashboard", "/sandboxes/{sandbox}/save/", "path=a%00&remote_path=x", "NUL"),
    ("bring into a sandbox, invalid UTF-8", "dashboard", "/sandboxes/{sandbox}/bring-in/", "artifact=%E9", "not UTF-8"),
    ("switch organization, NUL", "dashboard", "/orgs/switch/", "organization_id=%00", "NUL"),
    ("sign in, invalid UTF-8", "public", "/login/", "username=%FF&password=x", "not UTF-8"),
    ("a share's password, invalid UTF-8", "public", "/s/{token}/download", "password=%FF%FE", "not UTF-8"),
    ("a share's password, NUL", "public", "/s/{token}/download", "password=%00", "NUL"),
]


@pytest.mark.parametrize(("client", "url", "body", "says"), [pytest.param(*f[1:], id=f[0]) for f in FORMS])
def test_a_bad_form_gets_a_readable_4xx_page_and_stores_nothing(world, client, url, body, says):
    before = stored()
    response = getattr(world, client).post(
        url.format(**world.ids), body, content_type="application/x-www-form-urlencoded", **PAGE
    )
    assert response.status_code == 400, response.content[:500]
    assert response["Content-Type"].startswith("text/html") and says in response.content.decode()
    assert stored() == before


PAGES = [
    ("the artifact list, invalid UTF-8", "dashboard", "/artifacts/?q=%FF"),
    ("the artifact list, NUL", "dashboard", "/artifacts/?path=%00"),
    ("the sandbox list, invalid UTF-8", "dashboard", "/sandboxes/?session=%C3%28"),
    ("a sandbox's folder, NUL", "dashboard", "/sandboxes/{sandbox}/?path=/workspace/%00"),
    ("the audit log, NUL", "dashboard", "/audit/?actor=%00"),
    ("an artifact, NUL in its address", "dashboard", "/artifacts/art_%00/"),
    ("the share landing page, invalid UTF-8", "public", "/s/{token}?x=%FF"),
    ("the share landing page, NUL in its address", "public", "/s/%00"),
]


@pytest.mark.parametrize(("client", "url"), [pytest.param(*p[1:], id=p[0]) for p in PAGES])
def test_a_bad_address_gets_a_readable_4xx_page_and_stores_nothing(world, client, url):
    before = stored()
    response = getattr(world, client).get(url.format(**world.ids), **PAGE)
    assert response.status_code == 400, response.content[:500]
    assert (
        response["Content-Type"].startswith("text/html")
        and "This request cannot be handled" in response.content.decode()
    )
    assert stored() == before


def test_a_bad_header_on_the_share_landing_page_gets_a_readable_4xx_page(world):
    response = world.public.get(f"/s/{world.ids['token']}", HTTP_USER_AGENT=BAD_HEADER, **PAGE)
    assert response.status_code == 400 and b"User-Agent header" in response.content


def test_the_upload_form_refuses_bad_metadata_with_a_readable_page(world):
    before = stored()
    response = world.dashboard.post(
        reverse("artifact-upload"),
        {"file": SimpleUploadedFile("a.txt", b"data"), "meta_key": ["k"], "meta_value": ["a\x00b"]},
        **PAGE,
    )
    assert response.status_code == 400 and b"without NUL" in response.content
    assert stored() == before


# --- what a page shows cannot be broken ------------------------------------------------------------


def test_the_artifacts_page_still_renders_because_no_way_in_takes_a_lone_surrogate(world, owner):
    bad_metadata = '{"note": "' + SURROGATE + '"}'
    attempts = [
        world.api.put(UPLOADS["api"], b"x", content_type="text/plain", HTTP_X_ARTIFACT_METADATA=bad_metadata),
        world.dashboard.put(
            UPLOADS["dashboard"], b"x", content_type="text/plain", HTTP_X_ARTIFACT_METADATA=bad_metadata
        ),
        world.api.put("/api/v1/artifacts?remote_path=%ED%A0%80.txt", b"x", content_type="text/plain"),
        world.api.post(
            f"/api/v1/sandbox/{world.ids['sandbox']}/artifacts/upload",
            ('{"path": "a.txt", "metadata": ' + bad_metadata + "}").encode(),
            content_type="application/json",
        ),
        world.dashboard.post(
            "/artifacts/upload/direct/",
            ('{"remote_path": "' + SURROGATE + '", "size": 1}').encode(),
            content_type="application/json",
        ),
    ]
    for response in attempts:
        assert response.status_code == 400, response.content
    assert list(Artifact.objects.values_list("remote_path", flat=True)) == ["kept.txt"]
    page = world.dashboard.get(reverse("artifact-list"))
    assert page.status_code == 200 and b"kept.txt" in page.content
    # Another member of the organization sees the same page.
    member = Client()
    member.force_login(get_user_model().objects.get(username="member-user"))
    assert member.get(reverse("artifact-list")).status_code == 200


@pytest.mark.worker
def test_a_file_name_a_sandbox_made_of_bytes_that_are_not_utf_8_is_listed_and_shown(owner, sandbox, dashboard):
    sid = sandbox["sandbox_id"]
    made = owner.post(f"/sandbox/{sid}/execute", {"command": "touch /workspace/$(printf 'bad\\377name')"})
    assert made.status_code == 200 and made.json()["exit_code"] == 0, made.content
    listed = owner.get(f"/sandbox/{sid}/files/list").json()["files"]
    assert [entry["name"] for entry in listed] == ["bad\\xffname"]
    page = dashboard.owner.get(reverse("sandbox-detail", args=[sid]))
    assert page.status_code == 200 and "bad\\xffname" in page.content.decode()
