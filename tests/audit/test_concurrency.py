"""Appends to one organization's chain never wait for another's: one chain, one head row, one lock.

SQLite runs one writing transaction at a time (its IMMEDIATE transactions queue), so there the
appends of two organizations cannot overlap whatever the chains; these tests need PostgreSQL,
where the third pass of ``make test`` runs them.
"""

from __future__ import annotations

import io
import threading
import time

import pytest
from django.db import connection, transaction

from artifacts.models import ArtifactState
from audit.models import AuditEvent
from audit.services import audit_record, audit_verify_chain
from core.actor import Actor
from transfers.put import artifact_put

pytestmark = pytest.mark.skipif(
    connection.vendor != "postgresql", reason="SQLite cannot run two writing transactions at once"
)
# How long a test waits for a thread before calling it hung; no assertion measures time.
PATIENCE = 120


class HeldAppend(threading.Thread):
    """Appends an event to an organization's chain in a transaction it keeps open until released."""

    def __init__(self, org_id: str) -> None:
        super().__init__(daemon=True)
        self.org_id = org_id
        self.holding, self.release, self.committed = threading.Event(), threading.Event(), threading.Event()
        self.event: AuditEvent | None = None
        self.error: BaseException | None = None

    def run(self) -> None:
        try:
            with transaction.atomic():
                self.event = audit_record(actor=Actor(organization_id=self.org_id, label="held"), action="file.write")
                self.holding.set()
                self.release.wait(PATIENCE)
            self.committed.set()
        except BaseException as exc:
            self.error = exc
        finally:
            self.holding.set()
            connection.close()


def _waiting_on_a_lock() -> bool:
    with connection.cursor() as cursor:
        cursor.execute("SELECT count(*) FROM pg_locks WHERE NOT granted")
        return cursor.fetchone()[0] > 0


def test_another_organizations_upload_publishes_while_one_chain_is_held(owner, stranger, transactional_db):
    held = HeldAppend(owner.org_id)
    held.start()
    try:
        assert held.holding.wait(PATIENCE) and held.error is None
        theirs = artifact_put(
            actor=Actor(organization_id=stranger.org_id, label="other org"),
            stream=io.BytesIO(b"published while the other chain is locked\n"),
            remote_path="race/published.txt",
        )
        # Published, its event appended and committed, while the held transaction is still open.
        assert not held.committed.is_set()
        assert theirs.state == ArtifactState.READY
        event = AuditEvent.objects.get(action="artifact.upload", organization_id=stranger.org_id)
        assert event.details["checksum"] == theirs.checksum
    finally:
        held.release.set()
        held.join(PATIENCE)
    assert held.committed.is_set() and held.error is None
    assert audit_verify_chain().ok


def test_appends_to_the_same_chain_wait_their_turn(owner, transactional_db):
    held = HeldAppend(owner.org_id)
    held.start()
    assert held.holding.wait(PATIENCE) and held.error is None
    second: list[AuditEvent] = []
    follower = threading.Thread(
        target=lambda: (
            second.append(audit_record(actor=Actor(organization_id=owner.org_id, label="next"), action="file.read")),
            connection.close(),
        ),
        daemon=True,
    )
    follower.start()
    try:
        deadline = time.monotonic() + PATIENCE
        while not _waiting_on_a_lock():
            assert time.monotonic() < deadline, "the second append never waited for the first"
            time.sleep(0.01)
        assert not second and not held.committed.is_set()
    finally:
        held.release.set()
        held.join(PATIENCE)
        follower.join(PATIENCE)
    assert held.committed.is_set() and second
    assert second[0].prev_hash == held.event.hash
    assert audit_verify_chain(organization_id=owner.org_id).ok
