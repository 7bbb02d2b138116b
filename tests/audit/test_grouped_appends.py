"""Audit events recorded outside a transaction by many threads, or by many requests' coroutines,
are appended in batches: every chain still verifies, every event is there once, and each caller
gets its own event back with its place in the chain."""

from __future__ import annotations

import asyncio
import itertools
import threading

import pytest
from django.db import connections

from audit.models import AuditChain, AuditEvent
from audit.services import audit_record, audit_record_async, audit_verify_chain, event_hash
from core.actor import Actor

pytestmark = pytest.mark.django_db(transaction=True)
PATIENCE = 120


def _check_chain(org_id: str, expected: int, returned: list[AuditEvent]) -> None:
    report = audit_verify_chain(organization_id=org_id)
    assert report.ok, report.problem
    stored = list(AuditEvent.objects.filter(organization_id=org_id).order_by("seq"))
    # The fixture's own event (its API key's creation) came first.
    assert [event.action for event in stored[:1]] == ["apikey.create"]
    assert len(stored) == expected + 1
    assert AuditChain.objects.get(key=org_id).events == expected + 1
    by_id = {event.id: event for event in stored}
    # Each caller's event is the stored one: same hash, same seq, linked in seq order.
    for event in returned:
        assert by_id[event.id].hash == event.hash == event_hash(by_id[event.id])
        assert by_id[event.id].seq == event.seq
    for before, after in itertools.pairwise(stored):
        assert after.prev_hash == before.hash


def test_threads_of_two_organizations_append_at_once_and_both_chains_verify(owner, stranger) -> None:
    returned: dict[str, list[AuditEvent]] = {owner.org_id: [], stranger.org_id: []}
    errors: list[BaseException] = []
    start = threading.Barrier(24)

    def append(org_id: str, n: int) -> None:
        try:
            start.wait(PATIENCE)
            for round in range(5):
                event = audit_record(
                    actor=Actor(organization_id=org_id, label="worker"),
                    action="file.write",
                    resource=f"file:{n}-{round}",
                )
                returned[org_id].append(event)
        except BaseException as exc:
            errors.append(exc)
        finally:
            connections.close_all()

    threads = [
        threading.Thread(target=append, args=(org_id, n), daemon=True)
        for n in range(12)
        for org_id in (owner.org_id, stranger.org_id)
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(PATIENCE)
        assert not thread.is_alive()

    assert errors == []
    for org_id in (owner.org_id, stranger.org_id):
        _check_chain(org_id, 60, returned[org_id])


def test_requests_of_one_event_loop_append_together_and_the_chain_verifies(owner, stranger) -> None:
    async def main() -> list[AuditEvent]:
        return await asyncio.gather(
            *(
                audit_record_async(
                    actor=Actor(organization_id=org_id, label="web"), action="sandbox.execute", resource=f"cmd:{n}"
                )
                for n in range(30)
                for org_id in (owner.org_id, stranger.org_id)
            )
        )

    events = asyncio.run(main())

    for org_id in (owner.org_id, stranger.org_id):
        mine = [event for event in events if event.organization_id == org_id]
        _check_chain(org_id, 30, mine)
        # Linked in the order the requests asked.
        assert [event.resource for event in sorted(mine, key=lambda e: e.seq)] == [f"cmd:{n}" for n in range(30)]
