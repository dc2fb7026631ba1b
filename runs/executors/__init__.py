"""Executors start an attempt's runner somewhere: `local` (a subprocess of the worker) or
`kubernetes` (a Job). Both run the same runner, so runs look the same wherever they ran."""

import threading
from collections.abc import Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any, Protocol

if TYPE_CHECKING:
    from runs.models import Attempt
    from scheduling.models import Image


class Executor(Protocol):
    """What the platform asks of an executor. State changes go through runs.services."""

    name: str

    def run(self, attempt: "Attempt", token: str) -> None:
        """Starts (or, on the local executor, runs to its end) a claimed attempt."""

    def cancel(self, attempt: "Attempt") -> None:
        """Stops an attempt whose run was cancelled; best effort, never raises."""

    def build_ahead(self, image: "Image") -> None:
        """Builds the image of a version just deployed, so that its first run starts on its
        slot rather than after the build. A failed build is recorded on its ImageBuild (the
        console shows its log) and tried again by the first run."""

    def installs_at_start(self, image_spec: dict[str, Any]) -> bool:
        """Whether a run of this image installs its packages when it starts (the console
        says so), rather than in a build made once per image."""

    def isolation(self) -> str | None:
        """None when each run is isolated from the platform and from other runs (a sandbox, a
        pod); else the warning that it is not, which `make run` and the console show."""


def executor_for(name: str | None = None) -> Executor:
    from django.conf import settings

    name = name or settings.CHALK_EXECUTOR
    if name == "local":
        from runs.executors.local.executor import LocalExecutor

        return LocalExecutor()
    if name == "kubernetes":
        from runs.executors.kubernetes.executor import KubernetesExecutor

        return KubernetesExecutor()
    raise ValueError(f"unknown executor {name!r}: set CHALK_EXECUTOR to local or kubernetes")


_database_slots: threading.BoundedSemaphore | None = None
_database_slots_lock = threading.Lock()


@contextmanager
def database_slot() -> Iterator[None]:
    """Where a runs worker's thread uses the database: at most CHALK_WORKER_DB_CONNECTIONS
    threads of the worker at once, each connection closed at the end. A local runs worker has
    a thread per run, hundreds at the top of the hour; waiting for their runners, they hold no
    connection, so a burst never runs the database out of connections."""
    from django.conf import settings
    from django.db import connection

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
    CHALK_LOCAL_MAX_RUNS. Admission (local/admission.py) then decides which runs fit."""
    from django.conf import settings

    return ["--pool", "threads", "--concurrency", str(settings.CHALK_LOCAL_MAX_RUNS)]
