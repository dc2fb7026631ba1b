"""API tokens live in access/ now (access's 0007 took the table over, runs' 0010 moved its
links): a version's link moves too, and scheduling's model goes, in Django's state only. The
table, its rows and the foreign keys to it stay as they are."""

import django.db.models.deletion
from django.db import migrations, models


class Migration(migrations.Migration):
    dependencies = [
        ("access", "0007_apitoken"),
        ("runs", "0010_tokens_live_in_access"),
        ("scheduling", "0005_version_timezone"),
    ]

    operations = [
        migrations.SeparateDatabaseAndState(
            state_operations=[
                migrations.AlterField(
                    model_name="functionversion",
                    name="created_by_token",
                    field=models.ForeignKey(
                        blank=True,
                        null=True,
                        on_delete=django.db.models.deletion.SET_NULL,
                        related_name="+",
                        to="access.apitoken",
                    ),
                ),
                migrations.DeleteModel(name="ApiToken"),
            ],
        ),
    ]
