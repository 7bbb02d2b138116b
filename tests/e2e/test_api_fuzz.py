"""Schemathesis against the whole stack, from the API's own OpenAPI schema: every operation gets
generated valid and invalid requests (the coverage phase's boundary values, then random ones),
sent with a real API key to real sandboxes, artifacts and share links. It fails on any 5xx, on a
status an operation does not declare, on a body, header or content type its schema does not
describe, and on a request against the schema that is accepted.

Nothing is left out. Execute's streamed answer (SSE) is fuzzed too: schemathesis reads the
events and checks each against the documented event schema, within the request timeout."""

from __future__ import annotations

import base64
import json
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from config.stack import LocalStack

pytestmark = [pytest.mark.e2e, pytest.mark.fuzz]

# Enough to reach each operation's checks with values of every kind, while the whole pass stays
# within a few minutes on two cores.
FUZZ_EXAMPLES = 50
# Generated commands run for real in the sandboxes: these limits keep each one short, and the
# schema, which documents them, keeps generated timeouts within them.
STACK_LIMITS = {
    "STOWAGE_EXEC_DEFAULT_TIMEOUT_MS": "3000",
    "STOWAGE_EXEC_MAX_TIMEOUT_MS": "5000",
    "STOWAGE_SANDBOX_CREATE_WAIT_SECONDS": "20",
    "STOWAGE_TRANSFER_WAIT_SECONDS": "20",
    "STOWAGE_SANDBOX_FILE_WAIT_SECONDS": "20",
    # Webhooks of the pass send to a closed port on loopback: refused at once.
    "STOWAGE_WEBHOOK_ALLOWED_HOSTS": "127.0.0.1/32",
}
CHECKS = [
    "not_a_server_error",
    "status_code_conformance",
    "content_type_conformance",
    "response_schema_conformance",
    "response_headers_conformance",
    "negative_data_rejection",
    "ignored_auth",
    "unsupported_method",
    "missing_required_header",
    "allow_header_conformance",
]


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalStack]:
    with LocalStack(tmp_path_factory.mktemp("fuzz-stack") / "var", env=STACK_LIMITS) as running:
        yield running


class Api:
    def __init__(self, stack: LocalStack) -> None:
        self.http = httpx.Client(
            base_url=stack.base_url + "/api/v1", headers={"Authorization": f"Bearer {stack.api_key}"}, timeout=60
        )

    def call(self, method: str, path: str, expect: int, **kwargs: Any) -> dict[str, Any]:
        response = self.http.request(method, path, **kwargs)
        assert response.status_code == expect, (method, path, response.text)
        return response.json()

    def sandbox(self) -> dict[str, Any]:
        made = self.call("POST", "/sandbox/create", 201, json={"timeout_seconds": 1800})
        content = base64.b64encode(b"fuzz\n").decode()
        files = [{"path": "in.txt", "content": content}, {"path": "dir/a.txt", "content": content}]
        self.call("POST", f"/sandbox/{made['sandbox_id']}/files", 200, json={"files": files})
        return made

    def artifact(self, name: str) -> dict[str, Any]:
        return self.call("PUT", "/artifacts", 201, params={"remote_path": name}, content=b"fuzz artifact\n")

    def share(self, artifact_id: str) -> dict[str, Any]:
        return self.call("POST", f"/artifacts/{artifact_id}/shares", 201, json={})

    def agent_session(self, *, start: bool) -> dict[str, Any]:
        made = self.call("POST", "/agent/sessions", 201, json={"sandbox": {"timeout_seconds": 1800}})
        return self.call("POST", f"/agent/sessions/{made['id']}/start", 200) if start else made


def path_parameters(api: Api) -> tuple[dict[str, str], dict[str, dict[str, str]]]:
    """Real rows for every path parameter, so that generated requests get past the lookups to the
    services; the operations that end a row get rows of their own."""
    sandbox, doomed_sandbox = api.sandbox(), api.sandbox()
    artifact, doomed_artifact = api.artifact("fuzz/kept.txt"), api.artifact("fuzz/doomed.txt")
    share, doomed_share = api.share(artifact["id"]), api.share(artifact["id"])
    upload = api.call(
        "POST",
        f"/sandbox/{sandbox['sandbox_id']}/artifacts/upload",
        202,
        params={"wait": "false"},
        json={"path": "in.txt"},
    )
    doomed_key = api.call("POST", "/api-keys", 201, json={"name": "fuzz, to be revoked"})["api_key"]
    webhook_body = {"url": "http://127.0.0.1:9/fuzz", "timeout_ms": 2000, "retry_count": 0}
    webhook, doomed_webhook = (api.call("POST", "/webhooks", 201, json=webhook_body) for _ in range(2))
    session = api.agent_session(start=True)
    doomed_sessions = {name: api.agent_session(start=False)["id"] for name in ("delete", "stop", "cancel")}
    shared = {
        "sandbox_id": sandbox["sandbox_id"],
        "session_id": session["id"],
        "artifact_id": artifact["id"],
        "share_id": share["id"],
        "transfer_id": upload["transfer_id"],
        "key_id": "key_unknown",
        "webhook_id": webhook["id"],
        "delivery_id": "whd_unknown",
    }
    ending = {
        "DELETE /api/v1/sandbox/{sandbox_id}": {"sandbox_id": doomed_sandbox["sandbox_id"]},
        "POST /api/v1/sandbox/{sandbox_id}/stop": {"sandbox_id": doomed_sandbox["sandbox_id"]},
        "DELETE /api/v1/artifacts/{artifact_id}": {"artifact_id": doomed_artifact["id"]},
        "POST /api/v1/artifacts/{artifact_id}/shares/{share_id}/revoke": {"share_id": doomed_share["id"]},
        "DELETE /api/v1/api-keys/{key_id}": {"key_id": doomed_key["id"]},
        "DELETE /api/v1/webhooks/{webhook_id}": {"webhook_id": doomed_webhook["id"]},
        "DELETE /api/v1/agent/sessions/{session_id}": {"session_id": doomed_sessions["delete"]},
        "POST /api/v1/agent/sessions/{session_id}/stop": {"session_id": doomed_sessions["stop"]},
        "POST /api/v1/agent/sessions/{session_id}/cancel": {"session_id": doomed_sessions["cancel"]},
    }
    return shared, {name: {**shared, **own} for name, own in ending.items()}


def toml_table(values: dict[str, Any]) -> str:
    # JSON strings, numbers and booleans are TOML's too.
    return "{ " + ", ".join(f"{json.dumps(key)} = {json.dumps(value)}" for key, value in values.items()) + " }"


def config_file(path: Path, stack: LocalStack, shared: dict[str, str], ending: dict[str, dict[str, str]]) -> Path:
    def on_path(values: dict[str, str]) -> dict[str, str]:
        return {f"path.{name}": value for name, value in values.items()}

    lines = [
        "seed = 20250101",
        # One worker: the coverage phase keeps values it derived for one operation and reuses them
        # for the next, so with two workers what is generated depends on which finishes first.
        "workers = 1",
        "request-timeout = 30",
        f"headers = {toml_table({'Authorization': f'Bearer {stack.api_key}'})}",
        f"parameters = {toml_table(on_path(shared))}",
        "[generation]",
        'mode = "all"',
        f"max-examples = {FUZZ_EXAMPLES}",
        "[phases.examples]",
        "enabled = false",
        # Its links are inferred from the paths, and read deleting a file (DELETE .../files) as
        # deleting the listing (.../files/list); the other phases already fill the time budget.
        "[phases.stateful]",
        "enabled = false",
        "[checks]",
        "enabled = false",
        *(f"{name}.enabled = true" for name in CHECKS),
    ]
    for name, values in ending.items():
        lines += ["[[operations]]", f"include-name = {json.dumps(name)}", f"parameters = {toml_table(on_path(values))}"]
    path.write_text("\n".join(lines) + "\n")
    return path


def test_no_generated_request_gets_a_server_error_or_an_undocumented_answer(stack, tmp_path):
    shared, ending = path_parameters(Api(stack))
    config = config_file(tmp_path / "schemathesis.toml", stack, shared, ending)
    argv = [sys.executable, "-m", "schemathesis.cli", "--config-file", str(config), "--no-color", "run"]
    done = subprocess.run(
        [*argv, stack.base_url + "/api/v1/openapi.json"], capture_output=True, text=True, timeout=600, cwd=tmp_path
    )
    print(done.stdout[-4000:])
    # The findings last, where the end of a long log shows them.
    assert done.returncode == 0, "--- stack log ---\n" + stack.log_tail() + "\n--- schemathesis ---\n" + findings(done)


def findings(done: subprocess.CompletedProcess[str]) -> str:
    """What schemathesis reported as failed or broken, from its FAILURES or ERRORS section on."""
    sections = [done.stdout.find(f" {name} ") for name in ("FAILURES", "ERRORS")]
    start = min((at for at in sections if at >= 0), default=max(len(done.stdout) - 20000, 0))
    return done.stdout[start:][-40000:] + done.stderr[-4000:]
