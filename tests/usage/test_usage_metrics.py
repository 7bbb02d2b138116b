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
