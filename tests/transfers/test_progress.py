"""A transfer's progress row: written while a long transfer runs, never for one that ends sooner."""

from __future__ import annotations

import pytest

from artifacts.models import ArtifactState
from tests.factories import make_artifact, make_sandbox, make_transfer
from transfers import worker
from transfers.models import Transfer, TransferState


@pytest.fixture
def running(owner):
    sandbox = make_sandbox(owner.org_id)
    artifact = make_artifact(owner.org_id, sandbox, "big.bin", state=ArtifactState.PENDING)
    return make_transfer(owner.org_id, sandbox, artifact, state=TransferState.RUNNING)


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def clock(monkeypatch) -> Clock:
    clock = Clock()
    monkeypatch.setattr(worker.Progress, "clock", staticmethod(clock))
    return clock


def stored(transfer: Transfer) -> tuple[int, int | None]:
    transfer.refresh_from_db()
    return transfer.bytes_done, transfer.bytes_total


def test_a_long_transfer_shows_its_bytes_and_total_twice_a_second(running, clock):
    progress = worker.Progress(running.id)
    progress.total = 300
    progress(100)
    assert stored(running) == (0, None)  # nothing yet: it may end before anyone could look
    clock.now += 0.5
    progress(150)
    assert stored(running) == (150, 300)
    clock.now += 0.2
    progress(200)
    assert stored(running) == (150, 300)  # not twice within half a second
    clock.now += 0.3
    progress(250)
    assert stored(running) == (250, 300)


def test_a_transfer_whose_total_is_known_from_the_start_keeps_it(running, clock):
    Transfer.objects.filter(id=running.id).update(bytes_total=900)
    progress = worker.Progress(running.id)
    clock.now += 1
    progress(450)
    assert stored(running) == (450, 900)
