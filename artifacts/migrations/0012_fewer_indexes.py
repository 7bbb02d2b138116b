"""Three foreign-key indexes that others already cover are dropped: a folder's entries and blobs are
inserted by the thousand, and every index is written once per row.

- ``artifactentry.artifact_id``: artifact_entry_one_per_path (artifact, path) starts with it;
- ``artifactentry.blob_id``: indexed twice, by its own index and by artifact_entry_blob;
- ``blob.organization_id``: blob_one_per_org_digest (organization, sha256) starts with it.

Only the indexes go (on PostgreSQL their ``_like`` twins too); the foreign keys stay. Changing
``db_index`` with ``AlterField`` would rebuild both tables on SQLite to drop an index, so the
database side drops them by name instead.
"""

from __future__ import annotations

import django.db.models.deletion
from django.db import migrations, models

# (model, field, indexes of the field's column alone to keep)
FIELDS = (
    ("artifactentry", "artifact", ()),
    ("artifactentry", "blob", ("artifact_entry_blob",)),
    ("blob", "organization", ()),
)


def drop_indexes(apps, schema_editor) -> None:
    connection = schema_editor.connection
    for model_name, field_name, keep in FIELDS:
        model = apps.get_model("artifacts", model_name)
        table = model._meta.db_table
        column = model._meta.get_field(field_name).column
        with connection.cursor() as cursor:
            constraints = connection.introspection.get_constraints(cursor, table)
        for name, info in constraints.items():
            if (
                info["index"]
                and not info["unique"]
                and not info["primary_key"]
                and info["columns"] == [column]
                and name not in keep
            ):
                schema_editor.execute(f"DROP INDEX {schema_editor.quote_name(name)}")


def create_indexes(apps, schema_editor) -> None:
    for model_name, field_name, _keep in FIELDS:
        # The state before this migration: the field still has db_index.
        model = apps.get_model("artifacts", model_name)
        for sql in schema_editor._field_indexes_sql(model, model._meta.get_field(field_name)):
            schema_editor.execute(sql)


class Migration(migrations.Migration):
    dependencies = [
        ("accounts", "0003_apikey_parent_key"),
        ("artifacts", "0011_trash_list"),
    ]

    operations = [
        migrations.SeparateDatabaseAndState(
            database_operations=[migrations.RunPython(drop_indexes, create_indexes)],
            state_operations=[
                migrations.AlterField(
                    model_name="artifactentry",
                    name="artifact",
                    field=models.ForeignKey(
                        db_index=False,
                        on_delete=django.db.models.deletion.CASCADE,
                        related_name="entries",
                        to="artifacts.artifact",
                    ),
                ),
                migrations.AlterField(
                    model_name="artifactentry",
                    name="blob",
                    field=models.ForeignKey(
                        blank=True,
                        db_index=False,
                        null=True,
                        on_delete=django.db.models.deletion.PROTECT,
                        related_name="entries",
                        to="artifacts.blob",
                    ),
                ),
                migrations.AlterField(
                    model_name="blob",
                    name="organization",
                    field=models.ForeignKey(
                        db_index=False,
                        on_delete=django.db.models.deletion.CASCADE,
                        related_name="blobs",
                        to="accounts.organization",
                    ),
                ),
            ],
        ),
    ]
