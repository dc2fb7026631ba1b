"""Runs and backfills link to API tokens in access/ (access's 0007): the same table, so only
Django's state changes; the foreign keys in the database stay as they are."""

import django.db.models.deletion
from django.db import migrations, models


class Migration(migrations.Migration):
    dependencies = [
        ("access", "0007_apitoken"),
        ("runs", "0009_backfill"),
    ]

    operations = [
        migrations.SeparateDatabaseAndState(
            state_operations=[
                migrations.AlterField(
                    model_name=model_name,
                    name=field_name,
                    field=models.ForeignKey(
                        blank=True,
                        null=True,
                        on_delete=django.db.models.deletion.SET_NULL,
                        related_name="+",
                        to="access.apitoken",
                    ),
                )
                for model_name, field_name in [
                    ("backfill", "created_by_token"),
                    ("run", "triggered_by_token"),
                ]
            ],
        ),
    ]
