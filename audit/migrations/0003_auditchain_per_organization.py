from django.db import migrations, models

GENESIS_HASH = "0" * 64


def close_the_shared_chain(apps, schema_editor):
    """Mark where the shared chain ends: its events stay verifiable as they are, and each new
    chain starts from the hash of its last event."""
    head_model = apps.get_model("audit", "AuditChainHead")
    event_model = apps.get_model("audit", "AuditEvent")
    head = head_model.objects.filter(id=1).first()
    if head is None:
        last = event_model.objects.order_by("-seq").values("seq", "hash").first()
        head = head_model(
            id=1, last_hash=last["hash"] if last else GENESIS_HASH, last_seq=last["seq"] if last else 0
        )
    head.cutover_seq = head.last_seq
    head.save()


def reopen_the_shared_chain(apps, schema_editor):
    apps.get_model("audit", "AuditChainHead").objects.filter(id=1).update(cutover_seq=None)


class Migration(migrations.Migration):

    dependencies = [
        ("audit", "0002_auditevent_client_request_id"),
    ]

    operations = [
        migrations.AddField(
            model_name="auditchainhead",
            name="cutover_seq",
            field=models.BigIntegerField(
                blank=True,
                help_text="The seq of the last event of the shared chain; later events are in AuditChain.",
                null=True,
            ),
        ),
        migrations.CreateModel(
            name="AuditChain",
            fields=[
                ("key", models.CharField(max_length=40, primary_key=True, serialize=False)),
                ("last_hash", models.CharField(max_length=64)),
                ("last_seq", models.BigIntegerField(default=0)),
                ("events", models.BigIntegerField(default=0)),
            ],
        ),
        migrations.RunPython(close_the_shared_chain, reopen_the_shared_chain),
    ]
