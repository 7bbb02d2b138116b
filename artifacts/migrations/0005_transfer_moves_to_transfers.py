# Transfer now belongs to the transfers app, which took over its table (artifacts_transfer)
# in transfers.0001 before this runs; here it only leaves this app's state. The table stays.

from django.db import migrations


class Migration(migrations.Migration):

    dependencies = [
        ('artifacts', '0004_sharelink_moves_to_shares'),
        ('transfers', '0001_initial'),
    ]

    operations = [
        migrations.SeparateDatabaseAndState(
            state_operations=[migrations.DeleteModel(name='Transfer')],
            database_operations=[],
        ),
    ]
