"""The platform's own periodic tasks (runs/beat.py) are in place whatever the install's history,
and /readyz and the Platform page say when one is missing, disabled or not being sent. An
install upgraded from before the alerts sweep existed had no sweep and nothing said so."""

import datetime as dt

import pytest
from django.core.management import call_command
from django.utils import timezone
from django_celery_beat.models import PeriodicTask

from runs.beat import PERIODIC_TASKS
from tests.health.test_health import fresh_heartbeats
from tests.runs.support import wait_for

NEWER = ["chalkweb: alerts sweep", "chalkweb: prune old alert deliveries"]


def names() -> set[str]:
    return set(PeriodicTask.objects.values_list("name", flat=True))


@pytest.mark.django_db(transaction=True)
def test_migrate_gives_an_upgraded_install_the_periodic_tasks_it_lacks():
    # As an install whose data migration ran before these tasks existed.
    PeriodicTask.objects.filter(name__in=NEWER).delete()
    assert not names() >= set(NEWER)

    call_command("migrate", verbosity=0)  # nothing left to apply: it checks all the same

    assert names() >= set(PERIODIC_TASKS)


@pytest.mark.slow
def test_beat_creates_the_missing_periodic_tasks_when_it_starts(platform):
    PeriodicTask.objects.all().delete()
    # Beat alone, as its unit starts it: no test helper creates the rows first.
    platform._start("beat", ["beat", "--loglevel", "INFO", "--max-interval", "1"],
                    "beat: Starting")  # fmt: skip

    wait_for(lambda: names() >= set(PERIODIC_TASKS), timeout=30, message="the periodic tasks")


@pytest.mark.django_db
def test_readyz_and_the_platform_page_say_what_is_wrong_with_a_periodic_task(client, console):
    fresh_heartbeats()
    assert client.get("/readyz").json()["checks"]["periodic_tasks"] == {"ok": True, "problems": []}

    PeriodicTask.objects.filter(name="chalkweb: alerts sweep").delete()
    PeriodicTask.objects.filter(name="chalkweb: prune old runs").update(enabled=False)
    PeriodicTask.objects.filter(name="chalkweb: reaper").update(
        last_run_at=timezone.now() - dt.timedelta(hours=1)
    )

    response = client.get("/readyz")
    assert response.status_code == 503
    body = response.json()
    assert body["failed"] == ["periodic_tasks"]
    assert body["checks"]["periodic_tasks"]["problems"] == [
        "periodic task 'chalkweb: reaper' (runs.tasks.reap) was last sent 1 hour ago, "
        "though it runs every 10 seconds: is beat running?",
        "periodic task 'chalkweb: prune old runs' (runs.tasks.prune_runs) is disabled: enable "
        "it in the admin's Periodic tasks",
        "periodic task 'chalkweb: alerts sweep' (alerts.tasks.sweep) is missing: start beat, "
        "or run `manage.py migrate`, and it is created",
    ]
    page = console.get("/platform").content.decode()
    assert "Periodic task &#x27;chalkweb: alerts sweep&#x27; (alerts.tasks.sweep) is missing" in (
        page
    )
