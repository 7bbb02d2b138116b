"""Moving Transfer into the transfers app keeps its table and its rows, and gives the rows of
direct uploads their own states; back to the artifacts app, they get the old ones again."""

from __future__ import annotations

import pytest
from django.db import connection
from django.db.migrations.executor import MigrationExecutor
from django.utils import timezone

BEFORE = [("artifacts", "0003_transfer_direct_upload"), ("transfers", None)]
AFTER = [("artifacts", "0005_transfer_moves_to_transfers"), ("transfers", "0002_direct_upload_states")]

# id: (kind, upload_id, state, completed, error_code)
ROWS = {
    "trf_sandbox": ("upload", "", "running", False, ""),
    "trf_refused_sandbox": ("upload", "", "failed", False, "BROKER_UNAVAILABLE"),
    "trf_streamed": ("put", "", "running", False, ""),
    "trf_sending": ("put", "up-1", "running", False, ""),
    "trf_checking": ("put", "up-2", "running", True, ""),
    "trf_queued": ("put", "up-3", "queued", True, ""),
    "trf_refused": ("put", "up-4", "queued", True, "BROKER_UNAVAILABLE"),
    "trf_done": ("put", "up-5", "succeeded", True, ""),
}


def migrate(targets):
    executor = MigrationExecutor(connection)
    executor.migrate(targets)
    return executor.loader.project_state([target for target in targets if target[1]]).apps


def rows(apps, app_label: str) -> dict[str, tuple[str, str]]:
    transfers = apps.get_model(app_label, "Transfer").objects.all()
    return {transfer.id: (transfer.state, transfer.error_code) for transfer in transfers}


@pytest.mark.django_db(transaction=True)
def test_moving_transfer_keeps_every_row_and_names_direct_upload_states():
    old = migrate(BEFORE)
    organization = old.get_model("accounts", "Organization").objects.create(name="Initech")
    artifact = old.get_model("artifacts", "Artifact").objects.create(
        organization=organization, remote_path="a.bin", storage_key="blobs/a"
    )
    for transfer_id, (kind, upload_id, state, completed, error_code) in ROWS.items():
        old.get_model("artifacts", "Transfer").objects.create(
            id=transfer_id,
            organization=organization,
            artifact=artifact,
            kind=kind,
            upload_id=upload_id,
            state=state,
            completed_at=timezone.now() if completed else None,
            error_code=error_code,
        )
    before = rows(old, "artifacts")

    new = migrate(AFTER)
    assert rows(new, "transfers") == {
        **before,
        "trf_sending": ("receiving", ""),
        "trf_refused": ("unqueued", ""),
    }
    assert new.get_model("transfers", "Transfer")._meta.db_table == "artifacts_transfer"

    assert rows(migrate(BEFORE), "artifacts") == before
    # Back to the latest migrations, which later tests expect.
    migrate(MigrationExecutor(connection).loader.graph.leaf_nodes())
