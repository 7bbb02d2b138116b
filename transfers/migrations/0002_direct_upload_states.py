# A direct browser upload gets states of its own. Before, "running" with no completed_at meant
# "the browser is still sending parts", and a queued row with error_code BROKER_UNAVAILABLE meant
# "the queue refused the finish; send it again". Those rows become receiving and unqueued.

from django.db import migrations, models

BROKER_UNAVAILABLE = 'BROKER_UNAVAILABLE'


def to_explicit_states(apps, schema_editor):
    Transfer = apps.get_model('transfers', 'Transfer')
    direct = Transfer.objects.filter(kind='put').exclude(upload_id='')
    direct.filter(state='running', completed_at__isnull=True).update(state='receiving')
    direct.filter(state='queued', error_code=BROKER_UNAVAILABLE).update(state='unqueued', error_code='')


def to_overloaded_states(apps, schema_editor):
    Transfer = apps.get_model('transfers', 'Transfer')
    direct = Transfer.objects.filter(kind='put').exclude(upload_id='')
    direct.filter(state='receiving').update(state='running')
    direct.filter(state='unqueued').update(state='queued', error_code=BROKER_UNAVAILABLE)


class Migration(migrations.Migration):

    dependencies = [
        ('transfers', '0001_initial'),
    ]

    operations = [
        migrations.AlterField(
            model_name='transfer',
            name='state',
            field=models.CharField(choices=[('receiving', 'Receiving'), ('unqueued', 'Unqueued'), ('queued', 'Queued'), ('running', 'Running'), ('succeeded', 'Succeeded'), ('failed', 'Failed')], default='queued', max_length=10),
        ),
        migrations.RunPython(to_explicit_states, to_overloaded_states),
    ]
