from __future__ import annotations

import pytest

from tests.webhooks.receiver import Receiver


@pytest.fixture
def receiver():
    server = Receiver()
    yield server
    server.close()


@pytest.fixture
def queued(monkeypatch):
    """Deliveries handed to the queue, recorded instead of sent: tests run attempts themselves."""
    sent: list[tuple[str, float | None]] = []
    monkeypatch.setattr(
        "webhooks.worker.send_deliver", lambda delivery_id, countdown=None: sent.append((delivery_id, countdown))
    )
    return sent
