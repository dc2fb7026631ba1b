"""The platform's celery processes, apart from their tasks (runs/tasks.py): the database slots a
runs worker's threads share, the runs worker's pool, and what a worker (and beat) does at
start and stop. The executors use database_slot from here, below them; the tasks module
imports it too, which connects the signals below in every process that loads the tasks."""

import logging
import os
import resource
import threading
from collections.abc import Iterator
from contextlib import contextmanager

from celery.signals import (
    beat_init,
    worker_init,
    worker_process_init,
    worker_ready,
    worker_shutdown,
    worker_shutting_down,
)
from django.conf import settings
from django.db import connection
from django.utils import timezone

from chalkcompute.runtime.parent import die_with_parent
from runs import heartbeats

WORKER_HEARTBEAT_SECONDS = 10  # /readyz wants a runs worker seen in the last 30 s
QUEUE_COMPONENTS = {"chalk-runs": "runs-worker", "chalk-control": "control-worker"}
logger = logging.getLogger(__name__)
_stop_heartbeat = threading.Event()
# Set when this worker starts its warm shutdown: its runs end as they would, but it claims no
# new one (a runs worker handing over to a new one, manage.py runs_worker, drains only).
stopping = threading.Event()
# The pipe on which a runs worker tells manage.py runs_worker that it is ready (takes tasks).
READY_FD = "CHALK_WORKER_READY_FD"
_database_slots: threading.BoundedSemaphore | None = None
_database_slots_lock = threading.Lock()


@contextmanager
def database_slot() -> Iterator[None]:
    """Where a runs worker's thread uses the database: at most CHALK_WORKER_DB_CONNECTIONS
    threads of the worker at once, each connection closed at the end. A local runs worker has
    a thread per run, hundreds at the top of the hour; waiting for their runners, they hold no
    connection, so a burst never runs the database out of connections."""
    global _database_slots
    with _database_slots_lock:
        if _database_slots is None:
            _database_slots = threading.BoundedSemaphore(settings.CHALK_WORKER_DB_CONNECTIONS)
    with _database_slots:
        try:
            yield
        finally:
            if not connection.in_atomic_block:  # a caller's transaction (a test's) stays open
                connection.close()


def runs_worker_pool() -> list[str]:
    """The runs worker's pool options: celery's threads pool, a thread per run (a local run's
    thread waits for its runner; a Kubernetes one makes a Job and returns), as many as
    CHALK_LOCAL_MAX_RUNS. Admission (executors/local/admission.py) then decides which runs
    fit."""
    return ["--pool", "threads", "--concurrency", str(settings.CHALK_LOCAL_MAX_RUNS)]


@beat_init.connect
def _ensure_periodic_tasks(**_) -> None:
    """Beat sends what the database lists: a beat started on any install lists every one of
    the platform's periodic tasks first (an upgrade's new ones included)."""
    from runs.beat import ensure_periodic_tasks

    try:
        ensure_periodic_tasks()
    except Exception:  # the database is away: beat still starts, and /readyz says what lacks
        logger.exception("could not create the platform's periodic tasks")
    finally:
        connection.close()


@worker_init.connect
def _claim_runs(**_) -> None:
    stopping.clear()  # a worker started again in the same process (tests) claims again


@worker_init.connect
def _open_files_enough_for_hundreds_of_runs(**_) -> None:
    """A local run holds a dozen descriptors in its worker (pipes, its network's, its runner
    API socket): 1024, a common soft limit, is 80 runs. Raised to the hard limit."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft != resource.RLIM_INFINITY and (hard == resource.RLIM_INFINITY or soft < hard):
        resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))


@worker_process_init.connect
def _die_with_the_worker(**_) -> None:
    """A pool process dies with its worker, and the runner it started dies with it."""
    die_with_parent()


@worker_ready.connect
def _start_worker_heartbeat(sender, **_) -> None:
    """Each worker records itself every WORKER_HEARTBEAT_SECONDS (runs.models.Heartbeat, one
    row per worker and queue it consumes) from a thread of its main process, so every worker
    is seen, not just the one a periodic message happens to reach."""
    queues = sorted(sender.app.amqp.queues.consume_from)
    components = [QUEUE_COMPONENTS[queue] for queue in queues if queue in QUEUE_COMPONENTS]
    if not components:
        return
    hostname = sender.hostname
    detail = {"queues": queues, "pid": os.getpid(), "executor": settings.CHALK_EXECUTOR}
    _stop_heartbeat.clear()

    def beat() -> None:
        while not _stop_heartbeat.is_set():
            try:
                heartbeats.record(
                    [(component, hostname, detail, 1) for component in components],
                    now=timezone.now(),
                )
            except Exception:  # the database is away: /readyz says so; try again later
                logger.warning("could not record the worker's heartbeat", exc_info=True)
            finally:
                connection.close()  # this thread's own connection, not kept between beats
            _stop_heartbeat.wait(WORKER_HEARTBEAT_SECONDS)

    threading.Thread(target=beat, name="chalk-worker-heartbeat", daemon=True).start()


@worker_ready.connect
def _say_how_runs_are_isolated(sender, **_) -> None:
    """A runs worker says at start what its runs would hit at their slot: a sandbox piece
    missing (an error where it is required: every run is refused) or not isolated (warned)."""
    if "chalk-runs" not in sender.app.amqp.queues.consume_from:
        return
    if settings.CHALK_EXECUTOR != "local":
        return
    from runs.executors.local import sandbox

    found = sandbox.isolation()
    if found.refusal:
        logger.error("every local run will fail: %s", found.refusal)
    elif found.warning:
        logger.warning("%s", found.warning)


@worker_ready.connect
def _say_whether_the_secrets_key_decrypts(**_) -> None:
    """A key replaced instead of rotated is said at a worker's start, not by the first run
    that needs a secret."""
    from common.crypto import key_problem

    try:
        problem = key_problem()
    except Exception:  # the database is away: /readyz says so
        return
    finally:
        connection.close()
    if problem:
        logger.error("CHALK_SECRETS_KEY: %s", problem)


@worker_ready.connect
def _tell_the_supervisor_it_is_ready(**_) -> None:
    """manage.py runs_worker hands over from the old worker once the new one says this."""
    fd = os.environ.pop(READY_FD, "")
    if fd.isdigit():
        try:
            os.write(int(fd), b"ready")
            os.close(int(fd))
        except OSError:  # the supervisor is gone: nothing to tell
            pass


@worker_shutting_down.connect
def _claim_no_new_run(**_) -> None:
    stopping.set()


@worker_shutdown.connect
def _stop_worker_heartbeat(**_) -> None:
    _stop_heartbeat.set()
