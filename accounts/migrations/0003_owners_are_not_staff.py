"""Organization owners made by earlier versions of ``bootstrap`` were superusers, so each could
read every organization in /admin/. Only the instance's first superuser keeps staff rights; the
others stay owners of their organizations (``manage.py staff promote`` gives rights back)."""

from django.db import migrations


def demote_owners(apps, schema_editor):
    User = apps.get_model("auth", "User")
    Membership = apps.get_model("accounts", "Membership")
    superusers = User.objects.filter(is_superuser=True).order_by("date_joined", "pk")
    first = superusers.first()
    if first is None:
        return
    owners = Membership.objects.filter(role="owner").values_list("user_id", flat=True)
    superusers.exclude(pk=first.pk).filter(pk__in=owners).update(is_superuser=False, is_staff=False)


class Migration(migrations.Migration):
    dependencies = [("accounts", "0002_sso_identity"), ("auth", "0012_alter_user_first_name_max_length")]

    operations = [migrations.RunPython(demote_owners, migrations.RunPython.noop)]
