"""The local executor: runs the runner as a subprocess of the celery worker.

The worker slot stays busy while the run lasts, so the runs worker's concurrency is the bound
on concurrent local runs (CHALK_LOCAL_MAX_RUNS). The runner dies with the worker (Linux
PDEATHSIG): a killed worker leaves no orphan run, and the reaper then finds it lost.
"""

import os
import socket
import subprocess
import time
from pathlib import Path

from django.conf import settings
from django.utils import timezone

import chalk
import chalkcompute
from chalkcompute.runtime.parent import die_with_parent
from runs.executors.local.images import ImageBuildError, ensure_image
from runs.models import Attempt, AttemptStatus
from runs.services import (
    attempt_cancel_if_requested,
    attempt_fail,
    attempt_finish,
    attempt_heartbeat,
    attempt_runner_spawned,
)

RUNNER_GRACE_SECONDS = 60  # past the timeout, for the runner to stop the function and report


def sdk_path() -> Path:
    """A folder holding only the SDK packages, put on the runner's PYTHONPATH: the run's
    venv gets `chalkcompute` and `chalk` without the server's own packages."""
    folder = settings.DATA_DIR / "sdk"
    folder.mkdir(parents=True, exist_ok=True)
    for package in (chalkcompute, chalk):
        link = folder / package.__name__
        target = Path(package.__file__).parent
        if not link.exists():
            try:
                link.symlink_to(target, target_is_directory=True)
            except FileExistsError:
                pass
    return folder


class LocalExecutor:
    name = "local"

    def run(self, attempt: Attempt, token: str) -> None:
        version = attempt.run.version
        if version.gpu:
            attempt_finish(
                attempt=attempt, status=AttemptStatus.FAILED, now=timezone.now(),
                reason=f"the local executor has no GPU (the function asks for {version.gpu}); "
                "run it on the kubernetes executor", retryable=False,
            )  # fmt: skip
            return
        last_beat = [0.0]

        def heartbeat() -> None:
            if time.monotonic() - last_beat[0] > 5:
                last_beat[0] = time.monotonic()
                attempt_heartbeat(attempt=attempt, now=timezone.now())

        try:
            python = ensure_image(version.image, heartbeat)
        except ImageBuildError as exc:
            attempt_finish(
                attempt=attempt,
                status=AttemptStatus.FAILED,
                now=timezone.now(),
                reason=f"image build failed: {exc}",
            )
            return
        if attempt_cancel_if_requested(attempt=attempt, now=timezone.now()):
            return
        env = {
            "PATH": f"{python.parent}:/usr/local/bin:/usr/bin:/bin",
            "HOME": os.environ.get("HOME", "/tmp"),
            "LANG": "C.UTF-8",
            "TZ": "UTC",
            "PYTHONPATH": str(sdk_path()),
            "CHALK_IN_RUN": "1",
            "CHALK_SERVER_URL": settings.CHALK_RUNNER_SERVER_URL,
            "CHALK_ATTEMPT_TOKEN": token,
        }
        runner = subprocess.Popen(
            [str(python), "-m", "chalkcompute.runtime"],
            env=env,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            preexec_fn=die_with_parent,
        )
        attempt_runner_spawned(
            attempt=attempt, executor_ref=f"pid {runner.pid} on {socket.gethostname()}"
        )
        limit = version.timeout + RUNNER_GRACE_SECONDS if version.timeout else None
        try:
            _, errors = runner.communicate(timeout=limit)
        except subprocess.TimeoutExpired:
            runner.kill()
            _, errors = runner.communicate()
        if (
            runner.returncode != 0
            or Attempt.objects.filter(
                id=attempt.id, status__in=(AttemptStatus.STARTING, AttemptStatus.RUNNING)
            ).exists()
        ):
            tail = errors.decode("utf-8", "replace").strip()[-2000:]
            reason = f"the runner exited with code {runner.returncode} before reporting" + (
                f": {tail}" if tail else ""
            )
            attempt_fail(attempt=attempt, reason=reason, now=timezone.now())

    def installs_at_start(self, image_spec: dict) -> bool:
        return False  # each image's virtualenv is built once, before its first run

    def cancel(self, attempt: Attempt) -> None:
        """Nothing to do here: the runner learns of the cancel from its next heartbeat's
        answer (within a second), stops the function and reports `cancelled`."""
