"""The watcher: records what happens to an attempt's Job the moment Kubernetes reports it.

The reconcile pass lists everything every few seconds, so without the watcher an out-of-memory
kill or a failed pod waits up to one period to be recorded. The watcher follows attempt Job
events in between and hands each changed Job to `reconcile.reconcile_job`. The pass stays the
backstop for what a Job watch cannot see (a pod stuck pulling its image changes no Job) and for
events missed while the watcher was down.

Run one per Chalkweb installation: `python manage.py watch_kubernetes`. More are safe (an
attempt ends once) but only repeat the work.
"""

import logging
import threading
import time

from django.db import DatabaseError, close_old_connections
from django.utils import timezone

from runs.executors.kubernetes.cluster import JobCluster
from runs.executors.kubernetes.executor import CLUSTER_ERRORS, cluster_error_words, connect
from runs.executors.kubernetes.reconcile import reconcile, reconcile_job

logger = logging.getLogger(__name__)

# The API server ends each watch after this long and the watcher resumes from the last
# resourceVersion it saw: a silently dropped connection costs at most one period.
WATCH_SECONDS = 240
# Waits after consecutive failures (API server or database unreachable), the last repeating.
RETRY_DELAYS = (1, 2, 5, 10, 30)


def watch(stop: threading.Event, *, watch_seconds: int = WATCH_SECONDS) -> None:
    """Follows attempt Jobs until `stop` is set (checked between events and watch periods).
    Failures are logged and retried with growing waits, never raised: the watcher outlives
    API server restarts, expired resourceVersions and database restarts."""
    failures = 0
    while not stop.is_set():
        try:
            with connect() as cluster:
                # Watch from before the first pass: whatever changes after it arrives as an
                # event, and whatever happened before it (while no watcher ran), the pass sees.
                version = cluster.list_attempts().resource_version
                reconcile(now=timezone.now(), cluster=cluster)
                failures = 0
                _follow(cluster, version, stop, watch_seconds)
        except (*CLUSTER_ERRORS, DatabaseError) as exc:
            failures += 1
            delay = RETRY_DELAYS[min(failures, len(RETRY_DELAYS)) - 1]
            words = cluster_error_words(exc) if isinstance(exc, CLUSTER_ERRORS) else str(exc)
            logger.warning("kubernetes watcher: %s; retrying in %s s", words, delay)
            close_old_connections()
            stop.wait(delay)


def _follow(cluster: JobCluster, version: str, stop: threading.Event, watch_seconds: int) -> None:
    while not stop.is_set():
        started = time.monotonic()
        for event in cluster.watch_attempts(version, timeout_seconds=watch_seconds):
            version = event["resourceVersion"]
            close_old_connections()  # a long-lived process: drop connections the DB closed
            if event["type"] == "RELISTED":
                # Events were lost to compaction: a full pass finds what they said.
                reconcile(now=timezone.now(), cluster=cluster)
            elif event["type"] in ("ADDED", "MODIFIED", "DELETED"):
                done = reconcile_job(
                    job=event["object"],
                    deleted=event["type"] == "DELETED",
                    cluster=cluster,
                    now=timezone.now(),
                )
                logger.debug(
                    "kubernetes watcher: %s: %s", event["object"]["metadata"]["name"], done
                )
            if stop.is_set():
                return
        if time.monotonic() - started < 1:
            stop.wait(1)  # a server that ends every watch at once is not asked in a tight loop
