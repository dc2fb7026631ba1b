"""The periodic tasks beat sends: the tick, the reaper, retention, the Kubernetes reconcile and
the alerts sweep. They are ordinary django-celery-beat rows, visible and tunable in the admin;
this only creates missing ones."""

from django_celery_beat.models import IntervalSchedule, PeriodicTask

# name: (task, every seconds, expire seconds). A tick that waited longer than a few seconds
# is dropped: the next one does its work, and a backlog after an outage is not replayed.
PERIODIC_TASKS = {
    "chalkweb: tick": ("runs.tasks.tick", 1, 5),
    "chalkweb: reaper": ("runs.tasks.reap", 10, 30),
    "chalkweb: prune old runs": ("runs.tasks.prune_runs", 3600, 600),
    # Kubernetes outcomes the runner cannot report, and heartbeats for pods still waiting to
    # start: keep it well inside CHALK_HEARTBEAT_TIMEOUT_SECONDS. On the local executor it
    # returns at once.
    "chalkweb: reconcile kubernetes runs": ("runs.tasks.reconcile_kubernetes", 5, 10),
    # Late slots, runs still running and skipped slots (alerts/services.py: sweep).
    "chalkweb: alerts sweep": ("alerts.tasks.sweep", 5, 10),
    "chalkweb: prune old alert deliveries": ("alerts.tasks.prune_deliveries", 3600, 600),
}


def ensure_periodic_tasks(intervals: dict[str, int] | None = None) -> None:
    intervals = intervals or {}
    for name, (task, every, expire) in PERIODIC_TASKS.items():
        seconds = intervals.get(task, every)
        schedule, _ = IntervalSchedule.objects.get_or_create(
            every=seconds, period=IntervalSchedule.SECONDS
        )
        PeriodicTask.objects.get_or_create(
            name=name, defaults={"task": task, "interval": schedule, "expire_seconds": expire}
        )
