"""Prometheus gauges of each organization's stored bytes and artifacts."""

from __future__ import annotations

import pytest
from django.test import Client
from prometheus_client.parser import text_string_to_metric_families

from ops import metrics
from tests.factories import put_artifact

pytestmark = pytest.mark.django_db


def _gauges(text: str, name: str) -> dict[str, float]:
    return {
        sample.labels["organization"]: sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
        if sample.name == name
    }


@pytest.fixture(autouse=True)
def fresh_reading():
    metrics.ORGANIZATION_USAGE.forget()
    yield
    metrics.ORGANIZATION_USAGE.forget()


def test_metrics_expose_each_organizations_stored_bytes_and_artifacts(owner, stranger, broker):
    put_artifact(owner, "a.bin", b"a" * 3000)
    put_artifact(owner, "b.bin", b"b" * 1000)
    put_artifact(stranger, "c.bin", b"c" * 10)
    text = Client().get("/metrics").content.decode()
    stored = _gauges(text, "stowage_organization_stored_bytes")
    artifacts = _gauges(text, "stowage_organization_artifacts")
    assert stored[owner.org_id] == 4000 and artifacts[owner.org_id] == 2
    assert stored[stranger.org_id] == 10 and artifacts[stranger.org_id] == 1


def test_a_scrape_within_the_minute_answers_the_last_reading(owner, broker, django_assert_num_queries):
    put_artifact(owner, "a.bin", b"a" * 3000)
    assert _gauges(metrics.exposition().decode(), "stowage_organization_stored_bytes")[owner.org_id] == 3000
    put_artifact(owner, "b.bin", b"b" * 1000)
    with django_assert_num_queries(0):
        text = metrics.exposition().decode()
    assert _gauges(text, "stowage_organization_stored_bytes")[owner.org_id] == 3000
    metrics.ORGANIZATION_USAGE.forget()
    assert _gauges(metrics.exposition().decode(), "stowage_organization_stored_bytes")[owner.org_id] == 4000


def test_while_the_database_is_out_a_scrape_tries_it_once_a_minute(owner, broker, monkeypatch):
    """A scrape waits for an unreachable database up to the pool's timeout; the next scrapes of
    the minute must not wait again, or every scrape would time out in the monitoring system."""
    from django.db import OperationalError
    from django.db.models.query import QuerySet

    put_artifact(owner, "a.bin", b"a" * 3000)
    assert _gauges(metrics.exposition().decode(), "stowage_organization_stored_bytes")[owner.org_id] == 3000
    metrics.ORGANIZATION_USAGE.forget()
    tries = []

    def unreachable(self):
        tries.append(1)
        raise OperationalError("connection refused")

    monkeypatch.setattr(QuerySet, "__iter__", unreachable)
    for _ in range(3):
        text = metrics.exposition().decode()
        assert "stowage_http_requests_total" in text or "stowage_broker_up" in text
    assert len(tries) == 1
