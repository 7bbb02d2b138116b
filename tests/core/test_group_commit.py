"""Group commit: what many threads (or coroutines) write at once is committed together, each caller
returns only once its own item is in the database, and one bad item fails alone."""

from __future__ import annotations

import asyncio
import threading

import pytest
from django.db import connection, connections

from core.group_commit import AsyncGroupCommit, GroupCommit
from webhooks.models import WebhookEvent

pytestmark = pytest.mark.django_db(transaction=True)
PATIENCE = 60


class Recorder:
    """A write_batch that inserts webhook event rows and remembers each batch it was given."""

    def __init__(self, org_id: str, *, hold: threading.Event | None = None) -> None:
        self.org_id = org_id
        self.batches: list[list[str]] = []
        self.hold = hold
        self.entered = threading.Event()

    def __call__(self, names: list[str]) -> None:
        self.batches.append(list(names))
        self.entered.set()
        if self.hold is not None:
            self.hold.wait(PATIENCE)
        if "bad" in names:
            raise ValueError("a bad item")
        WebhookEvent.objects.bulk_create(
            [WebhookEvent(organization_id=self.org_id, type="test", payload={"name": name}) for name in names]
        )


def _stored(org_id: str) -> set[str]:
    return {row["payload"]["name"] for row in WebhookEvent.objects.filter(organization_id=org_id).values("payload")}


def _wait_for_queued(grouped: GroupCommit, count: int) -> None:
    """Until ``count`` callers wait behind the batch being written (which left the queue)."""
    for _ in range(PATIENCE * 100):
        if sum(len(group.queue) for group in grouped._groups.values()) >= count:
            return
        threading.Event().wait(0.01)
    raise AssertionError(f"{count} callers never queued")


def _run_threads(targets) -> None:
    threads = [threading.Thread(target=target, daemon=True) for target in targets]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(PATIENCE)
        assert not thread.is_alive()


def test_items_queued_while_a_batch_is_written_go_together_and_each_caller_sees_its_own(owner) -> None:
    org_id = owner.org_id
    hold = threading.Event()
    recorder = Recorder(org_id, hold=hold)
    grouped = GroupCommit(recorder)
    seen: dict[str, bool] = {}
    errors: list[BaseException] = []

    def submit(name: str) -> None:
        try:
            grouped.submit(name)
            # Committed by the time submit returns, seen from this thread's own connection.
            seen[name] = WebhookEvent.objects.filter(payload__name=name).exists()
        except BaseException as exc:
            errors.append(exc)
        finally:
            connections.close_all()

    first = threading.Thread(target=submit, args=("first",), daemon=True)
    first.start()
    assert recorder.entered.wait(PATIENCE)
    # While the first batch is held, 30 more callers queue up behind it.
    rest = [threading.Thread(target=submit, args=(f"item-{n}",), daemon=True) for n in range(30)]
    for thread in rest:
        thread.start()
    _wait_for_queued(grouped, 30)
    hold.set()
    for thread in [first, *rest]:
        thread.join(PATIENCE)
        assert not thread.is_alive()

    assert errors == []
    assert _stored(org_id) == {"first", *(f"item-{n}" for n in range(30))}
    assert all(seen.values()) and len(seen) == 31
    # The first alone, then everything that queued meanwhile in one more batch.
    assert recorder.batches[0] == ["first"]
    assert len(recorder.batches) == 2 and sorted(recorder.batches[1]) == sorted(f"item-{n}" for n in range(30))
    assert grouped._groups == {}


def test_a_bad_item_fails_alone_and_the_rest_of_its_batch_is_written(owner) -> None:
    org_id = owner.org_id
    hold = threading.Event()
    recorder = Recorder(org_id, hold=hold)
    grouped = GroupCommit(recorder)
    outcomes: dict[str, str] = {}

    def submit(name: str) -> None:
        try:
            grouped.submit(name)
            outcomes[name] = "ok"
        except ValueError:
            outcomes[name] = "failed"
        finally:
            connections.close_all()

    first = threading.Thread(target=submit, args=("first",), daemon=True)
    first.start()
    assert recorder.entered.wait(PATIENCE)
    names = ["a", "bad", "b", "c"]
    others = [threading.Thread(target=submit, args=(name,), daemon=True) for name in names]
    for thread in others:
        thread.start()
    _wait_for_queued(grouped, 4)
    hold.set()
    for thread in [first, *others]:
        thread.join(PATIENCE)

    assert outcomes == {"first": "ok", "a": "ok", "bad": "failed", "b": "ok", "c": "ok"}
    assert _stored(org_id) == {"first", "a", "b", "c"}


def test_keys_are_batched_apart_and_one_held_key_does_not_hold_another(owner) -> None:
    org_id = owner.org_id
    hold = threading.Event()
    held = Recorder(org_id, hold=hold)
    free = Recorder(org_id)

    def write(names: list[str]) -> None:
        (held if names[0].startswith("held") else free)(names)

    grouped = GroupCommit(write)

    def submit_held() -> None:
        try:
            grouped.submit("held-1", key="org-a")
        finally:
            connections.close_all()

    blocked = threading.Thread(target=submit_held, daemon=True)
    blocked.start()
    assert held.entered.wait(PATIENCE)
    if connection.vendor == "sqlite":
        # SQLite writes one transaction at a time, so the other key's write would queue on the
        # database itself; let the held batch go and check only that batches stay apart.
        hold.set()
    _run_threads([lambda n=n: (grouped.submit(f"free-{n}", key="org-b"), connections.close_all()) for n in range(5)])
    hold.set()
    blocked.join(PATIENCE)

    assert _stored(org_id) == {"held-1", *(f"free-{n}" for n in range(5))}
    assert all(name.startswith("free") for batch in free.batches for name in batch)
    assert held.batches == [["held-1"]]


def test_coroutines_of_one_loop_are_written_together_and_a_cancelled_one_is_still_written(owner) -> None:
    org_id = owner.org_id
    recorder = Recorder(org_id)
    grouped = AsyncGroupCommit(recorder)

    async def main() -> None:
        waits = [asyncio.ensure_future(grouped.submit(f"item-{n}")) for n in range(40)]
        await asyncio.sleep(0)
        waits[7].cancel()
        results = await asyncio.gather(*waits, return_exceptions=True)
        assert isinstance(results[7], asyncio.CancelledError)
        assert [r for n, r in enumerate(results) if n != 7] == [None] * 39
        # The flusher is done with this key and left nothing behind.
        await asyncio.sleep(0)
        assert grouped._queues[asyncio.get_running_loop()] == {}

    asyncio.run(main())

    assert _stored(org_id) == {f"item-{n}" for n in range(40)}
    # Queued in one turn of the loop: written in one batch, not forty.
    assert recorder.batches == [[f"item-{n}" for n in range(40)]]


def test_a_coroutines_bad_item_raises_there_alone(owner) -> None:
    org_id = owner.org_id
    grouped = AsyncGroupCommit(Recorder(org_id))

    async def main() -> list:
        return await asyncio.gather(*(grouped.submit(name) for name in ["a", "bad", "b"]), return_exceptions=True)

    results = asyncio.run(main())

    assert results[0] is None and results[2] is None
    assert isinstance(results[1], ValueError)
    assert _stored(org_id) == {"a", "b"}


def _until(predicate) -> None:
    for _ in range(PATIENCE * 100):
        if predicate():
            return
        threading.Event().wait(0.01)
    raise AssertionError("never happened")


def test_an_item_not_waited_for_is_written_by_the_process_writer(owner) -> None:
    org_id = owner.org_id
    recorder = Recorder(org_id)
    grouped = GroupCommit(recorder)

    grouped.submit("queued", wait=False)

    _until(lambda: "queued" in _stored(org_id))
    assert recorder.batches == [["queued"]]
    _until(lambda: grouped._groups == {})


def test_items_not_waited_for_go_with_the_next_batch_and_before_a_later_waited_one(owner) -> None:
    org_id = owner.org_id
    hold = threading.Event()
    recorder = Recorder(org_id, hold=hold)
    grouped = GroupCommit(recorder)

    def submit_first() -> None:
        try:
            grouped.submit("first")
        finally:
            connections.close_all()

    first = threading.Thread(target=submit_first, daemon=True)
    first.start()
    assert recorder.entered.wait(PATIENCE)
    # Queued behind the held batch, with nobody waiting for them: the writer thread leads next.
    grouped.submit("started-1", wait=False)
    grouped.submit("started-2", wait=False)
    done = threading.Event()

    def submit_last() -> None:
        try:
            grouped.submit("completed")
            done.set()
        finally:
            connections.close_all()

    last = threading.Thread(target=submit_last, daemon=True)
    last.start()
    _wait_for_queued(grouped, 3)
    hold.set()
    first.join(PATIENCE)
    last.join(PATIENCE)

    assert done.is_set()
    assert _stored(org_id) == {"first", "started-1", "started-2", "completed"}
    # Written in the order queued: the later, waited-for item never before the earlier ones.
    assert [name for batch in recorder.batches for name in batch] == ["first", "started-1", "started-2", "completed"]
