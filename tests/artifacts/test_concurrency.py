"""Races on whatever database is configured (SQLite by default, PostgreSQL with DATABASE_URL).

Each test starts its threads together at a barrier; every thread closes its own database
connection when it ends, so the test database can be flushed or dropped afterwards.
"""

from __future__ import annotations

import io
import threading
from collections.abc import Callable
from typing import Any

import pytest
from django.db import connection

from artifacts.models import Artifact, ArtifactState
from artifacts.services import artifact_delete
from audit.models import AuditEvent
from audit.services import audit_record, audit_verify_chain
from core.actor import Actor
from sandboxes.models import Sandbox, SandboxStatus
from sandboxes.services import sandbox_stop
from transfers.put import artifact_put


def race(count: int, work: Callable[[int], Any], timeout: float = 120) -> list[Any]:
    """Run work(0..count-1) in as many threads at once; return the results or raise the first error."""
    start = threading.Barrier(count)
    results: list[Any] = [None] * count
    errors: list[BaseException] = []

    def run(index: int) -> None:
        try:
            start.wait()
            results[index] = work(index)
        except BaseException as exc:
            errors.append(exc)
        finally:
            connection.close()

    threads = [threading.Thread(target=run, args=(i,)) for i in range(count)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=timeout)
    assert not any(thread.is_alive() for thread in threads), "a thread did not finish"
    if errors:
        raise errors[0]
    return results


def actor_of(user) -> Actor:
    return Actor(organization_id=user.org_id, label="race-test")


def test_concurrent_puts_to_one_path_get_versions_one_to_n(owner, transactional_db):
    count = 8
    actor = actor_of(owner)

    def put(index: int) -> Artifact:
        return artifact_put(actor=actor, stream=io.BytesIO(f"upload {index}\n".encode()), remote_path="race/same.txt")

    artifacts = race(count, put)
    assert sorted(a.version for a in artifacts) == list(range(1, count + 1))
    stored = Artifact.objects.filter(organization_id=owner.org_id, remote_path="race/same.txt")
    assert stored.count() == count
    assert sorted(stored.values_list("version", flat=True)) == list(range(1, count + 1))
    assert set(stored.values_list("state", flat=True)) == {ArtifactState.READY}
    assert AuditEvent.objects.filter(action="artifact.upload", outcome="success").count() == count
    assert audit_verify_chain().ok


def test_concurrent_appends_keep_the_audit_chain_whole(transactional_db):
    threads, per_thread = 8, 25
    before = AuditEvent.objects.count()

    def append(index: int) -> None:
        for n in range(per_thread):
            audit_record(actor=Actor.system(), action="race.append", details={"thread": index, "n": n})

    race(threads, append)
    assert AuditEvent.objects.count() == before + threads * per_thread
    assert AuditEvent.objects.filter(action="race.append").count() == threads * per_thread
    report = audit_verify_chain()
    assert report.ok, report
    assert report.checked == before + threads * per_thread


@pytest.mark.worker
def test_concurrent_stops_of_one_sandbox_move_it_once(owner, sandbox):
    sid = sandbox["sandbox_id"]
    actor = actor_of(owner)

    def stop(_: int) -> str:
        return sandbox_stop(actor=actor, sandbox=Sandbox.objects.get(id=sid), reason="race").status

    statuses = race(5, stop)
    assert set(statuses) == {SandboxStatus.TERMINATED}
    assert Sandbox.objects.get(id=sid).status == SandboxStatus.TERMINATED
    events = list(AuditEvent.objects.filter(action="sandbox.stop", sandbox_id=sid))
    assert len(events) == 5
    assert all(event.outcome == "success" for event in events)
    assert sorted(event.details["previous_status_changed"] for event in events) == [False, False, False, False, True]
    assert audit_verify_chain().ok


@pytest.mark.worker
def test_concurrent_deletes_of_one_artifact_record_one_deletion(owner, live):
    actor = actor_of(owner)
    artifact = artifact_put(actor=actor, stream=io.BytesIO(b"delete me\n"), remote_path="race/delete.txt")

    race(5, lambda _: artifact_delete(actor=actor, artifact=Artifact.objects.get(id=artifact.id)))
    assert Artifact.objects.get(id=artifact.id).state == ArtifactState.TRASHED
    assert AuditEvent.objects.filter(action="artifact.delete", resource=f"artifact:{artifact.id}").count() == 1
    assert audit_verify_chain().ok
