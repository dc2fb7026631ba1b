"""The periodic tasks beat sends: the tick, the reaper, retention, the Kubernetes reconcile and
the alerts sweep. They are ordinary django-celery-beat rows, visible and tunable in the admin;
this only creates missing ones, after every `migrate` and whenever beat starts: an install
upgraded from before a task existed gets it too (its data migration ran long ago).
health.state.periodic_task_problems says when one is missing, disabled or not being sent."""

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
    # Late slots, runs still running and skipped slots (alerts/sweep.py).
    "chalkweb: alerts sweep": ("alerts.tasks.sweep", 5, 10),
    "chalkweb: prune old alert deliveries": ("alerts.tasks.prune_deliveries", 3600, 600),
}


def ensure_periodic_tasks(intervals: dict[str, int] | None = None) -> None:
    """Creates the missing periodic tasks; `intervals` (task: seconds) sets those tasks' own
    intervals, created or not (the tests' fast reaper). Other rows are left as an admin left
    them."""
    intervals = intervals or {}
    for name, (task, every, expire) in PERIODIC_TASKS.items():
        seconds = intervals.get(task, every)
        schedule, _ = IntervalSchedule.objects.get_or_create(
            every=seconds, period=IntervalSchedule.SECONDS
        )
        row, _ = PeriodicTask.objects.get_or_create(
            name=name, defaults={"task": task, "interval": schedule, "expire_seconds": expire}
        )
        if task in intervals and row.interval_id != schedule.id:
            row.interval = schedule
            row.save()
