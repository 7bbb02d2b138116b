import django.db.models.deletion
import django.utils.timezone
from django.conf import settings
from django.db import migrations, models

import shares.models


def _rename_content_type(apps, schema_editor, old, new):
    # Permissions and admin history point at the content type: keep them with the model.
    ContentType = apps.get_model('contenttypes', 'ContentType')
    types = ContentType.objects.using(schema_editor.connection.alias)
    if not types.filter(app_label=new, model='sharelink').exists():
        types.filter(app_label=old, model='sharelink').update(app_label=new)


def content_type_to_shares(apps, schema_editor):
    _rename_content_type(apps, schema_editor, 'artifacts', 'shares')


def content_type_to_artifacts(apps, schema_editor):
    _rename_content_type(apps, schema_editor, 'shares', 'artifacts')


class Migration(migrations.Migration):
    """ShareLink, moved here from the artifacts app with its table (artifacts_sharelink) and its
    rows: Django's picture of the models changes, the database does not."""

    initial = True

    dependencies = [
        ('accounts', '0001_initial'),
        ('artifacts', '0004_sharelink_moves_to_shares'),
        ('contenttypes', '0002_remove_content_type_name'),
        migrations.swappable_dependency(settings.AUTH_USER_MODEL),
    ]

    operations = [
        migrations.SeparateDatabaseAndState(
            state_operations=[
                migrations.CreateModel(
                    name='ShareLink',
                    fields=[
                        ('id', models.CharField(default=shares.models.new_share_id, editable=False, max_length=40, primary_key=True, serialize=False)),
                        ('token_hash', models.CharField(max_length=64, unique=True)),
                        ('state', models.CharField(choices=[('pending', 'Pending'), ('active', 'Active'), ('revoked', 'Revoked')], default='pending', max_length=10)),
                        ('expires_at', models.DateTimeField(blank=True, null=True)),
                        ('max_downloads', models.PositiveIntegerField(blank=True, null=True)),
                        ('download_count', models.PositiveIntegerField(default=0)),
                        ('password_hash', models.CharField(blank=True, max_length=200)),
                        ('created_at', models.DateTimeField(default=django.utils.timezone.now)),
                        ('revoked_at', models.DateTimeField(blank=True, null=True)),
                        ('last_download_at', models.DateTimeField(blank=True, null=True)),
                        ('artifact', models.ForeignKey(on_delete=django.db.models.deletion.CASCADE, related_name='share_links', to='artifacts.artifact')),
                        ('created_by_api_key', models.ForeignKey(blank=True, null=True, on_delete=django.db.models.deletion.SET_NULL, related_name='+', to='accounts.apikey')),
                        ('created_by_user', models.ForeignKey(blank=True, null=True, on_delete=django.db.models.deletion.SET_NULL, related_name='+', to=settings.AUTH_USER_MODEL)),
                        ('organization', models.ForeignKey(on_delete=django.db.models.deletion.CASCADE, related_name='share_links', to='accounts.organization')),
                    ],
                    options={
                        'db_table': 'artifacts_sharelink',
                        'ordering': ['-created_at'],
                        'indexes': [models.Index(fields=['artifact', '-created_at'], name='share_artifact_created')],
                    },
                ),
            ],
            database_operations=[],
        ),
        migrations.RunPython(content_type_to_shares, content_type_to_artifacts),
    ]
