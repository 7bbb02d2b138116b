# The Transfer model moves here from the artifacts app with its table (artifacts_transfer) and
# its rows: only Django's idea of which app owns it changes, nothing is done to the database.

import django.db.models.deletion
import django.utils.timezone
from django.db import migrations, models

import transfers.models


class Migration(migrations.Migration):

    initial = True

    dependencies = [
        ('accounts', '0001_initial'),
        ('artifacts', '0003_transfer_direct_upload'),
    ]

    operations = [
        migrations.SeparateDatabaseAndState(
            state_operations=[
                migrations.CreateModel(
                    name='Transfer',
                    fields=[
                        ('id', models.CharField(default=transfers.models.new_transfer_id, editable=False, max_length=40, primary_key=True, serialize=False)),
                        ('kind', models.CharField(choices=[('upload', 'sandbox → storage'), ('download', 'storage → sandbox'), ('put', 'client → storage')], max_length=10)),
                        ('sandbox_id', models.CharField(blank=True, max_length=40)),
                        ('host', models.CharField(blank=True, max_length=128)),
                        ('path', models.CharField(blank=True, help_text='Source path (upload) or target path (download) in the sandbox.', max_length=4096)),
                        ('state', models.CharField(choices=[('queued', 'Queued'), ('running', 'Running'), ('succeeded', 'Succeeded'), ('failed', 'Failed')], default='queued', max_length=10)),
                        ('bytes_done', models.BigIntegerField(default=0)),
                        ('bytes_total', models.BigIntegerField(blank=True, null=True)),
                        ('error_code', models.CharField(blank=True, max_length=64)),
                        ('error_message', models.TextField(blank=True)),
                        ('attempts', models.PositiveIntegerField(default=0)),
                        ('created_at', models.DateTimeField(default=django.utils.timezone.now)),
                        ('started_at', models.DateTimeField(blank=True, null=True)),
                        ('finished_at', models.DateTimeField(blank=True, null=True)),
                        ('actor', models.JSONField(blank=True, default=dict, help_text='Who asked for it, for the audit event the worker records.')),
                        ('upload_id', models.CharField(blank=True, max_length=1024)),
                        ('part_size', models.PositiveBigIntegerField(blank=True, null=True)),
                        ('completed_at', models.DateTimeField(blank=True, null=True)),
                        ('heartbeat_at', models.DateTimeField(blank=True, null=True)),
                        ('artifact', models.ForeignKey(on_delete=django.db.models.deletion.CASCADE, related_name='transfers', to='artifacts.artifact')),
                        ('organization', models.ForeignKey(on_delete=django.db.models.deletion.CASCADE, related_name='transfers', to='accounts.organization')),
                    ],
                    options={
                        'db_table': 'artifacts_transfer',
                        'ordering': ['-created_at'],
                        'indexes': [
                            models.Index(fields=['organization', '-created_at'], name='transfer_org_created'),
                            models.Index(fields=['state', 'created_at'], name='transfer_state_created'),
                            models.Index(fields=['artifact', 'kind'], name='transfer_artifact_kind'),
                        ],
                    },
                ),
            ],
            database_operations=[],
        ),
    ]
