"""The local executor: runs the runner as a subprocess of the celery worker.

The runs worker runs celery's threads pool: a thread per run, which waits for its runner's
end. A run starts when its cpu and memory requests fit what the machine has free
(admission.py); CHALK_LOCAL_MAX_RUNS, the pool's size, bounds runs at once. The runner dies
with the worker (Linux PDEATHSIG): a killed worker leaves no orphan run, and the reaper then
finds it lost. While the runner lives, the worker keeps the attempt's heartbeat itself, so a
run outlives a restart of the web: its runner keeps its lines and outcome until the web is
back.

Each attempt runs in a sandbox (sandbox.py): bubblewrap, as an unprivileged uid when the
worker is root, seeing only what it needs read-only and its own work folder, with a network of
its own (network.py) that reaches the runner API through a socket this process proxies. Where
there is no sandbox (CHALK_LOCAL_SANDBOX=off, or auto without bwrap) it runs as the worker, and
its log says so; with CHALK_LOCAL_SANDBOX=bwrap it fails instead.
"""

import logging
import os
import resource
import select
import socket
import subprocess
import threading
import time

from django.conf import settings
from django.utils import timezone

from chalkcompute.runtime import protocol
from chalkcompute.runtime.parent import die_with_parent
from chalkcompute.runtime.usage import SANDBOXED
from runs.executors.local import network, sandbox
from runs.executors.local.admission import WAIT_CHECK_SECONDS, admission, requests_of
from runs.executors.local.images import ImageBuildError, collect_images, ensure_image
from runs.limits import run_memory_limit, run_timeout
from runs.logs import log_system
from runs.models import Attempt, AttemptStatus
from runs.selectors import images_in_use
from runs.services import (
    attempt_cancel_if_requested,
    attempt_fail,
    attempt_finish,
    attempt_heartbeat,
    attempt_runner_spawned,
)
from runs.worker import database_slot
from scheduling.models import Image

logger = logging.getLogger(__name__)

# Builds ahead go one at a time, each holding one database slot: a burst of deploys never
# holds the connections that the runs at the top of the hour need.
_BUILDING_AHEAD = threading.Lock()

# Past the timeout, for the runner to stop the function and report: as long as the runner
# waits for a web that is away (a restart or an upgrade) to take its last lines and outcome.
RUNNER_GRACE_SECONDS = 60 + protocol.SERVER_PATIENCE_SECONDS
# While its runner lives, the worker itself keeps the attempt's heartbeat in the database, at
# most this often and thrice within CHALK_HEARTBEAT_TIMEOUT_SECONDS: a runner whose web is away
# (restarting) is not lost, and the reaper's "lost" means that the worker and its runners are
# gone.
WORKER_HEARTBEAT_SECONDS = 10.0
READY_SECONDS = 10.0  # the most a run holds its preparation slot (an import may take longer)


class LocalExecutor:
    name = "local"

    def run(self, attempt: Attempt, token: str) -> None:
        """Prepares the attempt (its image, its sandbox's folders), waits for its requests to
        fit (admission.py), starts its runner and waits for its end. The database is used in
        short stretches (database_slot): a thread waiting for its runner holds no connection."""
        prepared = self._prepare(attempt)
        if prepared is None:
            return
        built, isolation, wanted = prepared
        machine = admission()
        if not machine.hold(attempt.id, wanted, _Waiting(attempt)):
            return
        preparing = _Preparing(attempt)
        try:
            with database_slot():
                if isolation.warning:
                    log_system(
                        attempt=attempt, text=isolation.warning, now=timezone.now(),
                        level="WARNING",
                    )  # fmt: skip
                sandbox.sweep_work_folders(_active)
            runtime = sandbox.runtime_copy()
            ids = sandbox.run_ids() if isolation.bwrap else None
            work = sandbox.work_folder(f"attempt-{attempt.id}", ids)
            try:
                self._run_runner(attempt, token, built, runtime, work, isolation, preparing)
            finally:
                sandbox.remove_tree(work.root)
        finally:
            preparing.done()
            machine.release(attempt.id)

    def _prepare(self, attempt: Attempt):
        """(image, isolation, requests) for an attempt that may run here; None with the
        attempt ended when it may not. A build holds a database slot only for its writes."""
        with database_slot():
            version = attempt.run.version
            image = version.image
            refusal = None
            if version.gpu:
                refusal = (
                    f"the local executor has no GPU (the function asks for {version.gpu}); "
                    "run it on the kubernetes executor"
                )
            wanted = requests_of(version.cpu, version.memory)
            refusal = refusal or admission().never_fits(wanted)
            isolation = sandbox.isolation()
            refusal = refusal or isolation.refusal
            if refusal:
                attempt_finish(
                    attempt=attempt, status=AttemptStatus.FAILED, now=timezone.now(),
                    reason=refusal, retryable=False,
                )  # fmt: skip
                return None
        last_beat = [0.0]

        def heartbeat() -> None:
            if time.monotonic() - last_beat[0] > 5:
                last_beat[0] = time.monotonic()
                with database_slot():
                    attempt_heartbeat(attempt=attempt, now=timezone.now())

        try:
            built = ensure_image(image, heartbeat, isolation)
        except ImageBuildError as exc:
            with database_slot():
                attempt_finish(
                    attempt=attempt,
                    status=AttemptStatus.FAILED,
                    now=timezone.now(),
                    reason=f"image build failed: {exc}",
                )
            return None
        with database_slot():
            if attempt_cancel_if_requested(attempt=attempt, now=timezone.now()):
                return None
        return built, isolation, wanted

    def _run_runner(self, attempt, token, built, runtime, work, isolation, preparing) -> None:
        version = attempt.run.version
        python = built.python
        memory_limit = run_memory_limit(version.memory)
        env = {
            "PATH": f"{python.parent}:/usr/local/bin:/usr/bin:/bin",
            "HOME": sandbox.HOME if isolation.bwrap else str(work.home),
            "LANG": "C.UTF-8",
            "TZ": "UTC",
            "PYTHONPATH": str(runtime),
            "CHALK_IN_RUN": "1",
            "CHALK_SERVER_URL": settings.CHALK_RUNNER_SERVER_URL,
        }
        if not isolation.bwrap:
            env["TMPDIR"] = str(work.tmp)
        if isolation.slirp4netns:
            env["CHALK_SERVER_SOCKET"] = f"{network.SOCKET_FOLDER}/{network.SOCKET_NAME}"
        # -S: no site, so no .pth file of the image runs code in the runner before it has read
        # and closed its token's pipe; the function's own process starts with site as usual.
        argv = [str(python), "-S", "-m", "chalkcompute.runtime"]
        if isolation.bwrap:
            # The runner owns its PID namespace: it counts and stops every process in it, and
            # counts what HOME and /tmp (memory) hold as the run's memory.
            env[SANDBOXED] = f"{sandbox.HOME}:/tmp"
            argv = sandbox.command(
                isolation.bwrap, argv, venv=built.venv, prefix=built.prefix, runtime=runtime,
                work=work, ids=sandbox.run_ids(), own_network=bool(isolation.slirp4netns),
                scratch_bytes=memory_limit,
            )  # fmt: skip
        data_limit = sandbox.data_limit(memory_limit)

        def prepare() -> None:  # in the child, before exec
            die_with_parent()
            resource.setrlimit(resource.RLIMIT_DATA, (data_limit, data_limit))

        proxy = own_network = None
        if isolation.slirp4netns:
            try:
                proxy = network.RunnerApiProxy(
                    work.api / network.SOCKET_NAME, settings.CHALK_RUNNER_SERVER_URL
                )
            except OSError as exc:
                with database_slot():
                    attempt_fail(
                        attempt=attempt, now=timezone.now(),
                        reason=f"the runner API's socket could not be made: {exc}",
                    )  # fmt: skip
                return
        ready_read, ready_write = os.pipe()
        try:
            env["CHALK_READY_FD"] = str(ready_write)
            try:
                runner, own_network = self._spawn(
                    attempt, argv, env, work, token, prepare, isolation, ready_write
                )
            finally:
                os.close(ready_write)
            if runner is None:
                return
            ready = select.poll()  # not select(): a worker of hundreds of runs has fds past 1024
            ready.register(ready_read, select.POLLIN)
            ready.poll(READY_SECONDS * 1000)  # a byte, or the runner's end
            preparing.done()
            self._wait(attempt, runner)
        finally:
            os.close(ready_read)
            if own_network:
                own_network.close()
            if proxy:
                proxy.close()

    def _spawn(self, attempt, argv, env, work, token, prepare, isolation, ready_write):
        """The runner's process and its network (None when it shares the worker's), or
        (None, None) with the attempt failed when its network cannot be made."""
        # The token goes on a pipe the runner reads and closes: never in an environment (the
        # function could read its runner's /proc/PID/environ) nor in a file.
        token_read, token_write = os.pipe()
        popen = dict(
            env={**env, "CHALK_ATTEMPT_TOKEN_FD": str(token_read)}, cwd=work.home,
            stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
            pass_fds=(token_read, ready_write), preexec_fn=prepare,
        )  # fmt: skip
        try:
            os.write(token_write, token.encode())
            os.close(token_write)
            if not isolation.slirp4netns:
                return subprocess.Popen(argv, **popen), None
            return network.spawn(
                argv, slirp4netns=isolation.slirp4netns, log=work.root / "slirp4netns.log", **popen
            )
        except network.NetworkError as exc:
            with database_slot():
                attempt_fail(
                    attempt=attempt, reason=f"the run's network could not be made: {exc}",
                    now=timezone.now(),
                )  # fmt: skip
            return None, None
        finally:
            os.close(token_read)

    def _wait(self, attempt, runner) -> None:
        version = attempt.run.version
        with database_slot():
            attempt_runner_spawned(
                attempt=attempt, executor_ref=f"pid {runner.pid} on {socket.gethostname()}"
            )
        deadline = time.monotonic() + run_timeout(version.timeout) + RUNNER_GRACE_SECONDS
        every = min(WORKER_HEARTBEAT_SECONDS, settings.CHALK_HEARTBEAT_TIMEOUT_SECONDS / 3)
        while True:
            wait = min(every, max(0.0, deadline - time.monotonic()))
            try:
                _, errors = runner.communicate(timeout=wait)  # retried, it loses no output
                break
            except subprocess.TimeoutExpired:
                if time.monotonic() >= deadline:
                    runner.kill()
                    _, errors = runner.communicate()
                    break
            with database_slot():
                attempt_heartbeat(attempt=attempt, now=timezone.now())
        with database_slot():
            unreported = Attempt.objects.filter(
                id=attempt.id, status__in=(AttemptStatus.STARTING, AttemptStatus.RUNNING)
            ).exists()
            if runner.returncode != 0 or unreported:
                tail = errors.decode("utf-8", "replace").strip()[-2000:]
                reason = f"the runner exited with code {runner.returncode} before reporting" + (
                    f": {tail}" if tail else ""
                )
                attempt_fail(attempt=attempt, reason=reason, now=timezone.now())

    def isolation(self) -> str | None:
        """None when runs are sandboxed; else what the console and `make run` say."""
        return sandbox.isolation().description

    def installs_at_start(self, image_spec: dict) -> bool:
        return False  # each image's virtualenv is built once, before its first run

    def build_ahead(self, image: Image) -> None:
        isolation = sandbox.isolation()
        if isolation.refusal:
            return  # no run starts here; each says why
        try:
            with _BUILDING_AHEAD:
                ensure_image(image, lambda: None, isolation)
        except ImageBuildError as exc:
            logger.info("image %s: the build ahead failed; its first run builds again (%s)",
                        image.spec_hash[:12], exc)  # fmt: skip
        # A deploy is when an image stops being used: the venvs of images that no current
        # version nor active run uses go, so they do not fill the disk deploy after deploy.
        with database_slot():
            in_use = images_in_use()
        removed = collect_images(in_use | {image.spec_hash})
        if removed:
            logger.info("removed %d image(s) no function uses any more", len(removed))

    def cancel(self, attempt: Attempt) -> None:
        """Nothing to do here: the runner learns of the cancel from its next heartbeat's
        answer (within a second), stops the function and reports `cancelled`."""


def _active(attempt_ids: list[int]) -> list[int]:
    return list(Attempt.objects.filter(id__in=attempt_ids).active().values_list("id", flat=True))


class _Waiting:
    """What an attempt does while its requests do not fit: says why in its log (again when
    the reason changes), keeps its heartbeat, and gives up when its run is cancelled."""

    def __init__(self, attempt: Attempt) -> None:
        self.attempt = attempt
        self.said = ""

    def __call__(self, why: str) -> bool:
        with database_slot():
            now = timezone.now()
            if attempt_cancel_if_requested(attempt=self.attempt, now=now) or not _active(
                [self.attempt.id]
            ):  # cancelled, or its slot skipped by a pause meanwhile
                return False
            attempt_heartbeat(attempt=self.attempt, now=now)
            if why.split(":")[0] != self.said:
                self.said = why.split(":")[0]
                log_system(attempt=self.attempt, text=why, now=now)
        return True


_preparation_slots: threading.BoundedSemaphore | None = None
_preparation_lock = threading.Lock()


class _Preparing:
    """One of CHALK_LOCAL_PREPARE_PARALLEL preparations at once, held from the sandbox's
    making until the runner says its function's module is imported (CHALK_READY_FD). Runs
    taken together for a slot get ready one after another, in the order they were taken,
    rather than all slowly at once: most are ready early, and the machine is not thrashed by
    hundreds of interpreters starting together. A run waiting for its turn keeps its
    heartbeat."""

    def __init__(self, attempt: Attempt) -> None:
        global _preparation_slots
        with _preparation_lock:
            if _preparation_slots is None:
                _preparation_slots = threading.BoundedSemaphore(
                    settings.CHALK_LOCAL_PREPARE_PARALLEL
                )
        while not _preparation_slots.acquire(timeout=WAIT_CHECK_SECONDS):
            with database_slot():
                attempt_heartbeat(attempt=attempt, now=timezone.now())
        self._held = True

    def done(self) -> None:
        if self._held:
            self._held = False
            _preparation_slots.release()
