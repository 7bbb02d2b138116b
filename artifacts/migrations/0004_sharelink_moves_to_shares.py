from django.db import migrations


class Migration(migrations.Migration):
    """ShareLink now belongs to the shares app, which keeps using this app's table
    (artifacts_sharelink): only Django's picture of the models changes, not the database."""

    dependencies = [
        ('artifacts', '0003_transfer_direct_upload'),
    ]

    operations = [
        migrations.SeparateDatabaseAndState(
            state_operations=[
                migrations.DeleteModel(name='ShareLink'),
            ],
            database_operations=[],
        ),
    ]
