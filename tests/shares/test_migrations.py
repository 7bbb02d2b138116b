from __future__ import annotations

import pytest
from django.db import connection
from django.db.migrations.executor import MigrationExecutor

from shares.models import ShareLink, ShareLinkState

# The last migration before ShareLink moved from the artifacts app to shares.
BEFORE_THE_MOVE = [("artifacts", "0003_transfer_direct_upload")]
CONTENT_TYPES = ("contenttypes", "0002_remove_content_type_name")


@pytest.mark.django_db(transaction=True)
def test_share_links_made_before_the_move_keep_their_rows_and_content_type():
    executor = MigrationExecutor(connection)
    latest = executor.loader.graph.leaf_nodes()
    executor.migrate(BEFORE_THE_MOVE)
    try:
        old = executor.loader.project_state([*BEFORE_THE_MOVE, CONTENT_TYPES]).apps
        org = old.get_model("accounts", "Organization").objects.create(name="Acme")
        artifact = old.get_model("artifacts", "Artifact").objects.create(
            organization=org, remote_path="old/report.txt", storage_key="blobs/old/report", state="ready"
        )
        made = old.get_model("artifacts", "ShareLink").objects.create(
            organization=org, artifact=artifact, token_hash="4" * 64, state="active", download_count=2
        )
        content_types = old.get_model("contenttypes", "ContentType").objects
        # A database from before the move has no shares app; an earlier test may have left its row.
        content_types.filter(app_label="shares").delete()
        content_type, _ = content_types.get_or_create(app_label="artifacts", model="sharelink")
    finally:
        executor = MigrationExecutor(connection)
        executor.migrate(latest)

    link = ShareLink.objects.get(id=made.id)
    assert (link.artifact_id, link.state, link.download_count) == (artifact.id, ShareLinkState.ACTIVE, 2)
    assert link.artifact.share_links.get() == link
    new = executor.loader.project_state(latest).apps.get_model("contenttypes", "ContentType")
    assert new.objects.get(app_label="shares", model="sharelink").id == content_type.id
    assert not new.objects.filter(app_label="artifacts", model="sharelink").exists()
