from django.db import migrations, models


class Migration(migrations.Migration):
    dependencies = [
        ("scheduling", "0004_version_alerts"),
    ]

    operations = [
        migrations.AddField(
            model_name="functionversion",
            name="timezone",
            field=models.CharField(blank=True, max_length=64, null=True),
        ),
    ]
