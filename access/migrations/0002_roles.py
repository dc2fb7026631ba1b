"""The four roles as groups holding their rights (access/rights.py)."""

from django.contrib.auth.management import create_permissions
from django.db import migrations

ROLE_RIGHTS = {
    "viewer": ["read"],
    "operator": ["read", "run"],
    "deployer": ["read", "run", "deploy", "secrets"],
    "admin": ["read", "run", "deploy", "secrets", "admin"],
}


def create_roles(apps, schema_editor):
    # Permissions are normally made after all migrations; the groups need them now.
    config = apps.get_app_config("access")
    config.models_module = True
    create_permissions(config, apps=apps, verbosity=0)
    config.models_module = None
    Group = apps.get_model("auth", "Group")
    Permission = apps.get_model("auth", "Permission")
    for role, rights in ROLE_RIGHTS.items():
        group, _ = Group.objects.get_or_create(name=role)
        group.permissions.add(
            *Permission.objects.filter(content_type__app_label="access", codename__in=rights)
        )


class Migration(migrations.Migration):
    dependencies = [
        ("access", "0001_initial"),
        ("auth", "0012_alter_user_first_name_max_length"),
        ("contenttypes", "0002_remove_content_type_name"),
    ]

    operations = [migrations.RunPython(create_roles, migrations.RunPython.noop)]
