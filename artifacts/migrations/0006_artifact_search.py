import django.db.models.deletion
from django.db import migrations, models

FTS_CREATE = (
    "CREATE VIRTUAL TABLE IF NOT EXISTS artifacts_search_fts USING fts5("
    "body, artifact_id UNINDEXED, detail=none, tokenize=\"unicode61 remove_diacritics 0 tokenchars '~'\")"
)
PG_CREATE = [
    "ALTER TABLE artifacts_artifactsearchentry ADD COLUMN document tsvector NOT NULL DEFAULT ''::tsvector",
    "CREATE INDEX artifact_search_document ON artifacts_artifactsearchentry USING gin (document)",
]


def create_word_index(apps, schema_editor):
    # Each database's own full-text index: no model describes it, so it is made here.
    if schema_editor.connection.vendor == "sqlite":
        schema_editor.execute(FTS_CREATE)
    elif schema_editor.connection.vendor == "postgresql":
        for statement in PG_CREATE:
            schema_editor.execute(statement)


def drop_word_index(apps, schema_editor):
    if schema_editor.connection.vendor == "sqlite":
        schema_editor.execute("DROP TABLE IF EXISTS artifacts_search_fts")


def index_existing_artifacts(apps, schema_editor):
    """Every artifact ready before the upgrade goes into the index, oldest first, in batches."""
    from artifacts.search_index import search_index_add_many

    artifact_model = apps.get_model("artifacts", "Artifact")
    entry_model = apps.get_model("artifacts", "ArtifactSearchEntry")
    ready = (
        artifact_model.objects.filter(state="ready")
        .only("id", "organization_id", "remote_path", "metadata", "sandbox_id", "session_id", "created_at")
        .order_by("created_at", "id")
    )
    search_index_add_many(ready.iterator(chunk_size=2000), entry_model=entry_model)


class Migration(migrations.Migration):
    dependencies = [
        ("artifacts", "0005_transfer_moves_to_transfers"),
    ]

    operations = [
        migrations.CreateModel(
            name="ArtifactSearchEntry",
            fields=[
                (
                    "artifact",
                    models.OneToOneField(
                        on_delete=django.db.models.deletion.CASCADE,
                        primary_key=True,
                        related_name="search_entry",
                        serialize=False,
                        to="artifacts.artifact",
                    ),
                ),
                ("organization_id", models.CharField(max_length=40)),
                ("sort_key", models.BigIntegerField(unique=True)),
            ],
            options={
                "indexes": [models.Index(fields=["organization_id", "-sort_key"], name="artifact_search_org_key")],
            },
        ),
        migrations.RunPython(create_word_index, drop_word_index),
        migrations.RunPython(index_existing_artifacts, migrations.RunPython.noop),
    ]
