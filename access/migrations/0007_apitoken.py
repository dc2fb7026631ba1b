"""API tokens move here from scheduling/, keeping their table (scheduling_apitoken) and its
rows: only Django's state changes. scheduling's 0006 and runs' 0010 point their links here and
drop the old model. The token's content type moves too, so the permissions given on it (the
admin's view_apitoken) stay given."""

import django.db.models.deletion
from django.conf import settings
from django.db import migrations, models


def _move_content_type(source: str, target: str):
    def move(apps, schema_editor) -> None:
        content_types = apps.get_model("contenttypes", "ContentType").objects
        if not content_types.filter(app_label=target, model="apitoken").exists():
            content_types.filter(app_label=source, model="apitoken").update(app_label=target)

    return move


class Migration(migrations.Migration):
    dependencies = [
        ("access", "0006_backfill_action"),
        ("contenttypes", "0002_remove_content_type_name"),
        ("scheduling", "0005_version_timezone"),
        migrations.swappable_dependency(settings.AUTH_USER_MODEL),
    ]

    operations = [
        migrations.SeparateDatabaseAndState(
            state_operations=[
                migrations.CreateModel(
                    name="ApiToken",
                    fields=[
                        (
                            "id",
                            models.BigAutoField(
                                auto_created=True,
                                primary_key=True,
                                serialize=False,
                                verbose_name="ID",
                            ),
                        ),
                        ("name", models.CharField(max_length=100)),
                        ("token_hash", models.CharField(max_length=64)),
                        ("prefix", models.CharField(max_length=16)),
                        ("scopes", models.JSONField(default=list)),
                        ("created_at", models.DateTimeField()),
                        ("expires_at", models.DateTimeField(blank=True, null=True)),
                        ("last_used_at", models.DateTimeField(blank=True, null=True)),
                        ("last_used_from", models.GenericIPAddressField(blank=True, null=True)),
                        ("revoked_at", models.DateTimeField(blank=True, null=True)),
                        (
                            "created_by",
                            models.ForeignKey(
                                blank=True,
                                null=True,
                                on_delete=django.db.models.deletion.CASCADE,
                                to=settings.AUTH_USER_MODEL,
                            ),
                        ),
                    ],
                    options={
                        "verbose_name": "API token",
                        "db_table": "scheduling_apitoken",
                        "ordering": ["-created_at"],
                        "constraints": [
                            models.UniqueConstraint(
                                fields=("token_hash",), name="scheduling_unique_token_hash"
                            )
                        ],
                    },
                ),
            ],
        ),
        migrations.RunPython(
            _move_content_type("scheduling", "access"),
            _move_content_type("access", "scheduling"),
        ),
    ]
