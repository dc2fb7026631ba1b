"""Celery tasks: thin, each fetches by id and calls a service."""

import datetime as dt
import logging
import os
import resource
import socket
import threading
import time

from celery import shared_task
from celery.signals import (
    beat_init,
    worker_init,
    worker_process_init,
    worker_ready,
    worker_shutdown,
)
from django.conf import settings
from django.db import connection
from django.utils import timezone

from access.services import audit_prune
from chalkcompute.runtime.parent import die_with_parent
from runs import backfills, heartbeats, scheduler, services
from runs.executors import database_slot, executor_for
from runs.models import Attempt
from scheduling.models import Image

WAIT_FOR_DUE = dt.timedelta(seconds=10)
WORKER_HEARTBEAT_SECONDS = 10  # /readyz wants a runs worker seen in the last 30 s
QUEUE_COMPONENTS = {"chalk-runs": "runs-worker", "chalk-control": "control-worker"}
logger = logging.getLogger(__name__)
_stop_heartbeat = threading.Event()


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


@worker_shutdown.connect
def _stop_worker_heartbeat(**_) -> None:
    _stop_heartbeat.set()


@shared_task(ignore_result=True)
def tick() -> int:
    started = time.monotonic()
    now = timezone.now()
    result = scheduler.tick(now=now)
    detail = {
        "duration_seconds": round(time.monotonic() - started, 6),
        "claimed": result.runs + result.skipped,
        "runs": result.runs,
        "skipped": result.skipped,
        "lookahead_seconds": round(result.lookahead.total_seconds(), 3),
    }
    heartbeats.record([("beat", "", detail, 1)], now=now)
    return result.runs


@shared_task(ignore_result=True)
def reap() -> dict[str, int]:
    now = timezone.now()
    done = {**services.reap(now=now), "backfill_runs": backfills.backfills_advance(now=now)}
    heartbeats.record(
        [("reaper", "", done, 1)]
        + [("reaper-action", action, None, count) for action, count in done.items()],
        now=now,
    )
    return done


@shared_task(ignore_result=True)
def advance_backfill(backfill_id: int) -> int:
    """Sent when one of the backfill's runs ended (see backfills.backfill_advance)."""
    return backfills.backfill_advance(backfill_id=backfill_id, now=timezone.now())


# Acknowledged on receipt: a run can last hours, and a redelivered message after a worker's
# death must not start anything twice. The reaper finds a killed attempt lost and retries it.
@shared_task(ignore_result=True, acks_late=False)
def run_due_attempts(ahead_seconds: float = services.PREPARE_AHEAD.total_seconds()) -> int:
    """Claims and runs attempts due within `ahead_seconds` one after another until none is
    left; returns how many. The wake-up's `ahead` is its slot's preparation lead
    (services.prepare_lead), so a large slot is taken early enough to be ready on time.

    A wake-up that arrives a little before its attempts are due (clocks of two machines
    differ) waits for them rather than leaving them to the reaper.
    """
    executor = executor_for()
    ahead = dt.timedelta(seconds=min(max(ahead_seconds, 0.0), settings.CHALK_MAX_PREPARE_SECONDS))
    ran = 0
    while True:
        with database_slot():
            now = timezone.now()
            claimed = services.attempt_claim_next(
                executor=executor.name,
                executor_ref=f"pid {os.getpid()} on {socket.gethostname()}",
                now=now,
                ahead=ahead,
            )
            soon = None
            if claimed is None:
                soon = services.next_queued_start(before=now + ahead + WAIT_FOR_DUE)
        if claimed is None:
            if soon is None:
                return ran
            time.sleep(max(0.0, (soon - ahead - now).total_seconds()))
            continue
        attempt, token = claimed
        try:
            executor.run(attempt, token)
        except Exception as exc:  # a bug or the machine: the attempt fails now, saying so
            logger.exception("attempt %s could not be run", attempt.id)
            with database_slot():
                services.attempt_fail(
                    attempt=attempt, now=timezone.now(),
                    reason=f"the worker could not run it: {type(exc).__name__}: {exc}",
                )  # fmt: skip
        ran += 1


@shared_task(ignore_result=True)
def build_image(image_id: int) -> None:
    """Builds a just-deployed version's image ahead of its first run (Executor.build_ahead):
    sent by scheduling.services.function_deploy, to a runs worker, where local images live."""
    with database_slot():
        image = Image.objects.filter(id=image_id).first()
    if image is None:
        return
    try:
        executor_for().build_ahead(image)
    except Exception:  # the machine (a full disk): the first run builds it, and says why not
        logger.exception("image %s could not be built ahead", image_id)


@shared_task(ignore_result=True)
def cancel_attempts(attempt_ids: list[int]) -> None:
    """Tells each attempt's executor of its run's cancel (see services.run_cancel)."""
    for attempt in Attempt.objects.filter(id__in=attempt_ids):
        executor_for(attempt.executor).cancel(attempt)


@shared_task(ignore_result=True)
def reconcile_kubernetes() -> dict[str, int]:
    """Records what the cluster did to Kubernetes attempts (see runs.executors.kubernetes.
    reconcile). Returns at once on the local executor with no Kubernetes attempt in flight."""
    # Imported here: a worker on the local executor never loads the Kubernetes client.
    from runs.executors.kubernetes.reconcile import reconcile, reconcile_needed

    if not reconcile_needed():
        return {}
    return reconcile(now=timezone.now())


@shared_task(ignore_result=True)
def prune_runs() -> int:
    """Deletes finished runs (with their logs and usage) past the retention period, and audit
    events past theirs; returns how many runs."""
    now = timezone.now()
    audit_prune(before=now - dt.timedelta(days=settings.CHALK_AUDIT_RETENTION_DAYS))
    return services.runs_prune(before=now - dt.timedelta(days=settings.CHALK_RUN_RETENTION_DAYS))
