"""The platform's celery processes, apart from their tasks (runs/tasks.py): the database slots a
runs worker's threads share, the runs worker's pool, what a worker (and beat) does at start
and stop, and how a process of an older Chalkweb keeps out of a newer one's way. The executors
use database_slot from here, below them; the tasks module imports it too, which connects the
signals below in every process that loads the tasks.

Chalkweb has no rolling upgrade across versions: a worker or beat whose code is older than the
database (a newer Chalkweb migrated it) refuses to start, or, already running, stops within
its heartbeat period as a SIGTERM stops it (runs in flight finish), and exits with
EXIT_OLDER_THAN_DATABASE. Every task message says which code sent it (chalkweb/celery.py);
a worker that receives one from a newer Chalkweb puts it back in its queue, for a worker of
that version, and stops, instead of discarding a task it does not know or failing on an
argument it does not take."""

import logging
import os
import resource
import signal
import socket
import threading
import time
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
from celery.worker.consumer import Consumer
from django.conf import settings
from django.db import connection
from django.utils import timezone
from vine import promise

from chalkcompute.runtime.parent import die_with_parent
from common.database import EXIT_OLDER_THAN_DATABASE, not_migrated_sentence, pending_migrations
from runs import heartbeats
from runs.versions import BEAT_COMPONENT, older_than_database, sent_by_newer_code, this_code

WORKER_HEARTBEAT_SECONDS = 10  # /readyz wants a runs worker seen in the last 30 s
BEAT_HEARTBEAT_SECONDS = 10
QUEUE_COMPONENTS = {"chalk-runs": "runs-worker", "chalk-control": "control-worker"}
logger = logging.getLogger(__name__)
_stop_heartbeat = threading.Event()
# Set when this worker starts its warm shutdown: its runs end as they would, but it claims no
# new one (a runs worker handing over to a new one, manage.py runs_worker, drains only).
stopping = threading.Event()
# The pipe on which a runs worker tells manage.py runs_worker that it is ready (takes tasks).
READY_FD = "CHALK_WORKER_READY_FD"
_stopping_for_newer_code = threading.Event()
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


def _refuse_to_start_beside_a_newer_database() -> None:
    try:
        sentence = older_than_database()
    finally:
        connection.close()
    if sentence:
        logger.error("%s", sentence)
        raise SystemExit(EXIT_OLDER_THAN_DATABASE)
    try:
        pending = pending_migrations()
    except Exception:  # the database is away: /readyz says so
        return
    finally:
        connection.close()
    if pending:  # a newer code than the database: said, and left to `migrate` and /readyz
        logger.error("%s", not_migrated_sentence(pending))


@worker_init.connect
def _check_the_database_at_worker_start(**_) -> None:
    """Before the worker consumes anything."""
    _refuse_to_start_beside_a_newer_database()


@beat_init.connect
def _check_the_database_at_beat_start(**_) -> None:
    """Before beat sends anything (connected before _ensure_periodic_tasks, so called first)."""
    _refuse_to_start_beside_a_newer_database()


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
    detail = {
        "queues": queues, "pid": os.getpid(), "executor": settings.CHALK_EXECUTOR, **this_code(),
    }  # fmt: skip
    _stop_heartbeat.clear()

    def beat() -> None:
        while not _stop_heartbeat.is_set():
            try:
                heartbeats.record(
                    [(component, hostname, detail, 1) for component in components],
                    now=timezone.now(),
                )
                sentence = older_than_database()
            except Exception:  # the database is away: /readyz says so; try again later
                logger.warning("could not record the worker's heartbeat", exc_info=True)
                sentence = None
            finally:
                connection.close()  # this thread's own connection, not kept between beats
            if sentence:
                _stop_the_worker(sentence)
                return
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


def _stop_the_worker(sentence: str) -> None:
    """Stops this worker as `systemctl stop` does (SIGTERM: a warm shutdown, no new task, those
    running finish); it then exits with EXIT_OLDER_THAN_DATABASE. Said once."""
    if _stopping_for_newer_code.is_set():
        return
    _stopping_for_newer_code.set()
    logger.error("%s. This worker stops: it takes no new task, and those running finish", sentence)
    os.kill(os.getpid(), signal.SIGTERM)


@worker_shutdown.connect
def _stop_worker_heartbeat(sender, **_) -> None:
    _stop_heartbeat.set()
    if _stopping_for_newer_code.is_set():
        sender.exitcode = EXIT_OLDER_THAN_DATABASE  # what `celery worker` exits with


@beat_init.connect
def _start_beat_heartbeat(sender, **_) -> None:
    """Beat records itself (BEAT_COMPONENT, with its code) every BEAT_HEARTBEAT_SECONDS and,
    once the database is newer than its code, stops sending and exits with
    EXIT_OLDER_THAN_DATABASE. The thread is not a daemon, so that beat's exit waits for that
    status; it ends within a second of beat's main thread otherwise."""
    service, main = sender, threading.main_thread()
    name = f"beat@{socket.gethostname()}"
    detail = {"pid": os.getpid(), **this_code()}

    def beat() -> None:
        next_beat = 0.0
        while main.is_alive():
            if time.monotonic() >= next_beat:
                next_beat = time.monotonic() + BEAT_HEARTBEAT_SECONDS
                try:
                    heartbeats.record([(BEAT_COMPONENT, name, detail, 1)], now=timezone.now())
                    sentence = older_than_database()
                except Exception:  # the database is away: /readyz says so; try again later
                    logger.warning("could not record beat's heartbeat", exc_info=True)
                    sentence = None
                finally:
                    connection.close()
                if sentence:
                    logger.error("%s. Beat stops: it sends no more tasks", sentence)
                    service.stop()  # its loop ends and its schedule is saved, then main ends
                    main.join(timeout=30)
                    logging.shutdown()
                    os._exit(EXIT_OLDER_THAN_DATABASE)
            time.sleep(1)

    threading.Thread(target=beat, name="chalk-beat-heartbeat").start()


class VersionCheckingConsumer(Consumer):
    """celery's consumer (settings.CELERY_WORKER_CONSUMER), but a task message from a newer
    Chalkweb is rejected back to its queue, before anything acknowledges it, and the worker
    stops. celery itself would discard a task it does not know ("Received unregistered
    task ... discarded") and fail one that passes an argument this code does not take."""

    def create_task_handler(self, promise=promise):
        handle = super().create_task_handler(promise)

        def on_task_received(message):
            sentence = sent_by_newer_code(message.headers)
            if sentence is None:
                return handle(message)
            message.reject_log_error(logger, self.connection_errors, requeue=True)
            _stop_the_worker(sentence)

        return on_task_received
