"""Creates the periodic tasks beat sends (tick, reaper, retention), visible in the admin."""

from django.db import migrations


def create_periodic_tasks(apps, schema_editor):
    from runs.beat import PERIODIC_TASKS

    IntervalSchedule = apps.get_model("django_celery_beat", "IntervalSchedule")
    PeriodicTask = apps.get_model("django_celery_beat", "PeriodicTask")
    for name, (task, every, expire) in PERIODIC_TASKS.items():
        schedule, _ = IntervalSchedule.objects.get_or_create(every=every, period="seconds")
        PeriodicTask.objects.get_or_create(
            name=name, defaults={"task": task, "interval": schedule, "expire_seconds": expire}
        )


class Migration(migrations.Migration):
    dependencies = [
        ("runs", "0001_initial"),
        ("django_celery_beat", "0019_alter_periodictasks_options"),
    ]

    operations = [migrations.RunPython(create_periodic_tasks, migrations.RunPython.noop)]
