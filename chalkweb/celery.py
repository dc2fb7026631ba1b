import logging
import os

from celery import Celery
from celery.signals import after_setup_logger, before_task_publish

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "chalkweb.settings")

app = Celery("chalkweb")
app.config_from_object("django.conf:settings", namespace="CELERY")
app.autodiscover_tasks()


@before_task_publish.connect
def name_the_code_that_sends(headers=None, **_) -> None:
    """Every task message, from any process (the web, a worker, beat), names the Chalkweb that
    sent it, so that an older worker puts a newer one's task back (runs/worker.py)."""
    from runs.versions import CODE_HEADER, this_code  # Django's apps are ready by the first send

    if headers is not None:
        headers.setdefault(CODE_HEADER, this_code())


def purge_queues() -> None:
    """Empties Chalkweb's queues (benchmarks and process tests start from nothing)."""
    with app.connection_for_write() as connection:
        channel = connection.default_channel
        for queue in ("chalk-control", "chalk-runs"):
            channel.queue_declare(queue=queue, durable=True, auto_delete=False)
            channel.queue_purge(queue)


# The loggers of celery's routine lines about a task: beat sent it, a worker received it, it
# succeeded. Failures, retries and warnings come at other levels and are left alone.
ROUTINE_TASK_LOGGERS = ("celery.beat", "celery.worker.strategy", "celery.app.trace")


class PeriodicTaskChatter(logging.Filter):
    """Demotes the routine INFO lines about the platform's own periodic tasks (runs/beat.py:
    the tick every second, the reaper, the Kubernetes reconcile, pruning) to DEBUG, so that
    at the default level they do not bury runs, deploys, warnings and errors, and
    `--loglevel DEBUG` still shows them. Other tasks' lines keep their level."""

    def __init__(self) -> None:
        super().__init__()
        self._tasks: frozenset[str] | None = None

    def tasks(self) -> frozenset[str]:
        if self._tasks is None:
            try:
                from runs.beat import PERIODIC_TASKS  # needs Django's apps, ready by now
            except Exception:  # not yet: nothing is demoted until they are
                return frozenset()
            self._tasks = frozenset(task for task, _, _ in PERIODIC_TASKS.values())
        return self._tasks

    def filter(self, record: logging.LogRecord) -> bool:
        if record.levelno != logging.INFO or _task_name(record) not in self.tasks():
            return True
        if not logging.getLogger(record.name).isEnabledFor(logging.DEBUG):
            return False
        record.levelno, record.levelname = logging.DEBUG, logging.getLevelName(logging.DEBUG)
        return True


def _task_name(record: logging.LogRecord) -> str | None:
    data = getattr(record, "data", None)  # the worker's "received" and "succeeded" lines
    if isinstance(data, dict):
        return data.get("name")
    # beat: "Scheduler: Sending due task %s (%s)" % (entry name, task name)
    if record.name == "celery.beat" and isinstance(record.args, tuple) and len(record.args) == 2:
        return str(record.args[1])
    return None


_periodic_task_chatter = PeriodicTaskChatter()


@after_setup_logger.connect
def quiet_periodic_tasks(**_) -> None:
    """Installed on the loggers themselves, so the pool's forked processes keep it."""
    for name in ROUTINE_TASK_LOGGERS:
        logger = logging.getLogger(name)
        if _periodic_task_chatter not in logger.filters:
            logger.addFilter(_periodic_task_chatter)
