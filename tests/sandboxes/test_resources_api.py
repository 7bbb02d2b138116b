"""What a sandbox may ask for: a disk the kernel enforces, memory a host has, cpus capped to its cores."""

from __future__ import annotations

import base64

import pytest
from django.conf import settings

from sandboxes.limits import format_size
from sandboxes.models import Sandbox
from sandboxes.runtime import disk
from sandboxes.worker import sweep_host

LOOP_REASON = disk.unavailable_reason()
needs_loop = pytest.mark.skipif(
    LOOP_REASON is not None, reason=f"workspace images cannot be loop-mounted on this host: {LOOP_REASON}"
)


def workspace_mounts() -> list[str]:
    with open("/proc/mounts") as handle:
        return [line.split()[1] for line in handle if line.split()[1].startswith(str(settings.SANDBOX_ROOT))]


def create(user, **body) -> dict:
    response = user.post("/sandbox/create", {"timeout_seconds": 600, **body})
    assert response.status_code == 201, response.content
    return response.json()


@pytest.mark.worker
@needs_loop
def test_a_sandbox_writing_past_its_disk_fails_while_a_second_on_the_same_worker_keeps_working(owner, live):
    small, other = create(owner, disk="32Mi"), create(owner, disk="64Mi")
    assert (small["disk"], small["disk_enforced"]) == ("32Mi", True)
    assert small["host"] == other["host"]

    full = owner.post(
        f"/sandbox/{small['sandbox_id']}/execute", {"command": "head -c 48000000 /dev/zero > /workspace/fill"}
    ).json()
    assert full["exit_code"] != 0
    assert "No space left on device" in full["stderr"]

    sid = other["sandbox_id"]
    wrote = owner.post(f"/sandbox/{sid}/execute", {"command": "head -c 16000000 /dev/zero > big && wc -c < big"})
    assert wrote.json()["stdout"].strip() == "16000000"
    files = owner.post(
        f"/sandbox/{sid}/files", {"files": [{"path": "note.txt", "content": base64.b64encode(b"ok").decode()}]}
    )
    assert files.status_code == 200, files.content
    # The worker still answers the full sandbox too.
    echo = owner.post(f"/sandbox/{small['sandbox_id']}/execute", {"command": ["echo", "alive"]}).json()
    assert echo["stdout"] == "alive\n"

    for sandbox in (small, other):
        assert owner.post(f"/sandbox/{sandbox['sandbox_id']}/stop").json() == {"success": True}
    mounts = workspace_mounts()
    assert not [m for m in mounts if small["sandbox_id"] in m or other["sandbox_id"] in m], mounts


@pytest.mark.worker
@needs_loop
def test_the_default_disk_is_given_and_enforced(owner, sandbox):
    assert (sandbox["disk"], sandbox["disk_enforced"]) == (settings.SANDBOX_DISK_DEFAULT, True)
    df = owner.post(f"/sandbox/{sandbox['sandbox_id']}/execute", {"command": "df -k /workspace | tail -1"}).json()
    size_kib = int(df["stdout"].split()[1])
    assert 0.9 * (1 << 20) < size_kib <= 1 << 20


@pytest.mark.worker
@needs_loop
def test_a_file_call_into_a_full_workspace_is_507_and_the_sandbox_keeps_working(owner, live):
    sid = create(owner, disk="16Mi")["sandbox_id"]
    fill = owner.post(f"/sandbox/{sid}/execute", {"command": "head -c 30000000 /dev/zero > /workspace/fill"}).json()
    assert "No space left on device" in fill["stderr"]

    content = base64.b64encode(b"x" * (1 << 20)).decode()
    response = owner.post(f"/sandbox/{sid}/files", {"files": [{"path": "more.bin", "content": content}]})
    assert response.status_code == 507, response.content
    error = response.json()["error"]
    assert error["code"] == "NO_SPACE" and "disk" in error["message"]

    owner.post(f"/sandbox/{sid}/execute", {"command": ["rm", "/workspace/fill"]})
    again = owner.post(f"/sandbox/{sid}/files", {"files": [{"path": "more.bin", "content": content}]})
    assert again.status_code == 200, again.content


@pytest.mark.worker
@needs_loop
def test_an_artifact_downloaded_into_a_full_workspace_fails_with_507_and_leaves_no_partial_file(owner, live):
    source = create(owner, disk="64Mi")["sandbox_id"]
    made = owner.post(f"/sandbox/{source}/execute", {"command": "head -c 12000000 /dev/urandom > /workspace/data.bin"})
    assert made.json()["exit_code"] == 0
    artifact = owner.post(f"/sandbox/{source}/artifacts/upload", {"path": "/workspace/data.bin"}).json()

    target = create(owner, disk="16Mi")["sandbox_id"]
    owner.post(f"/sandbox/{target}/execute", {"command": "head -c 8000000 /dev/zero > /workspace/half"})
    response = owner.post(
        f"/sandbox/{target}/artifacts/download", {"artifact_id": artifact["id"], "target_path": "/workspace/in.bin"}
    )
    assert response.status_code == 507, response.content
    assert response.json()["error"]["code"] == "NO_SPACE"
    listing = owner.post(f"/sandbox/{target}/execute", {"command": "ls -A /workspace"}).json()
    assert listing["stdout"].split() == ["half"]

    owner.post(f"/sandbox/{target}/execute", {"command": ["rm", "/workspace/half"]})
    again = owner.post(
        f"/sandbox/{target}/artifacts/download", {"artifact_id": artifact["id"], "target_path": "/workspace/in.bin"}
    )
    assert again.status_code == 200, again.content


@pytest.mark.worker
def test_cpus_above_the_hosts_cores_are_capped_and_the_sandbox_says_so(owner, live, settings):
    sandbox = create(owner, cpus=str(settings.SANDBOX_HOST_CPUS + 2))
    assert sandbox["cpus"] == str(settings.SANDBOX_HOST_CPUS)
    assert sandbox["cpus_requested"] == str(settings.SANDBOX_HOST_CPUS + 2)
    assert Sandbox.objects.get(id=sandbox["sandbox_id"]).cpu_count == settings.SANDBOX_HOST_CPUS

    modest = create(owner, cpus="1")
    assert (modest["cpus"], modest["cpus_requested"]) == ("1", "1")


@pytest.mark.worker
def test_the_hosted_apis_example_of_four_cpus_works_on_a_smaller_host(owner, live, settings):
    settings.SANDBOX_HOST_CPUS = 2
    sandbox = create(owner, cpus="4", memory="1Gi")
    assert (sandbox["cpus"], sandbox["cpus_requested"], sandbox["status"]) == ("2", "4", "running")


@pytest.mark.worker
@needs_loop
def test_the_worker_sweep_unmounts_sandboxes_that_are_no_longer_running(owner, live):
    sandbox = create(owner, disk="32Mi")
    Sandbox.objects.filter(id=sandbox["sandbox_id"]).update(status="terminated")
    running = create(owner, disk="32Mi")
    assert any(sandbox["sandbox_id"] in m for m in workspace_mounts())

    assert sweep_host() >= 1
    mounts = workspace_mounts()
    assert not any(sandbox["sandbox_id"] in m for m in mounts)
    assert any(running["sandbox_id"] in m for m in mounts)
    assert not (settings.SANDBOX_ROOT / sandbox["sandbox_id"]).exists()


@pytest.mark.parametrize("value", ["0", 0, "0Mi", "21Gi", "1Ti", "lots", "-1Gi", "1Ki"])
def test_a_disk_of_zero_or_over_the_maximum_is_refused_and_nothing_is_made(owner, db, value):
    response = owner.post("/sandbox/create", {"disk": value})
    assert response.status_code == 400, response.content
    error = response.json()["error"]
    assert error["details"]["field"] == "disk"
    assert "disk must be" in error["message"] and "between 16Mi and 20Gi" in error["message"]
    assert not Sandbox.objects.exists()


def test_memory_above_what_the_host_has_is_refused_naming_the_allowed_range(owner, db, settings):
    settings.SANDBOX_HOST_MEMORY_BYTES = 3 << 30
    response = owner.post("/sandbox/create", {"memory": "4Gi"})
    assert response.status_code == 400, response.content
    error = response.json()["error"]
    assert error["details"] == {"field": "memory", "min_bytes": 64 << 20, "max_bytes": 3 << 30}
    assert "between 64Mi and 3Gi" in error["message"]
    assert not Sandbox.objects.exists()


def test_the_memory_ceiling_is_the_hosts_real_memory():
    assert settings.SANDBOX_HOST_MEMORY_BYTES > 0
    with open("/proc/meminfo") as handle:
        total_kib = int(next(line for line in handle if line.startswith("MemTotal:")).split()[1])
    assert total_kib * 1024 == settings.SANDBOX_HOST_MEMORY_BYTES


def test_sizes_are_named_in_the_largest_unit_that_divides_them():
    assert [format_size(n) for n in (1 << 30, 20 << 30, 3 << 40, 1536 << 20, (1 << 30) + 5)] == [
        "1Gi",
        "20Gi",
        "3Ti",
        "1536Mi",
        "1024Mi",
    ]
