"""`manage.py runs_worker`: a machine's runs worker (deploy/systemd/chalkweb-runs-worker.service),
a celery worker on the chalk-runs queue run as a child of this process, so that a restart of it
never stops runs from starting nor cuts a run short.

- SIGHUP (`systemctl reload chalkweb-runs-worker`) hands over: a new celery worker starts,
  with the code installed now; once it is ready, the old one gets celery's warm shutdown. It
  claims no new run (runs.worker.stopping) and exits when the runs it has end, however long
  they last, while the new one takes every new run. A new worker that exits before it is
  ready leaves the old one serving, and says so.
- SIGTERM or SIGINT (`systemctl stop`) is celery's warm shutdown for every child: this process
  exits when their runs have ended (systemd kills what is left at TimeoutStopSec).
- A worker that stops because its code is older than the database (exit 78, runs/worker.py:
  another process migrated, as an upgrade's restart of the web does) is replaced at once by a
  worker on the code installed now, which an upgrade has just installed; only if that one
  refuses too does this process exit 78 (and systemd leaves it stopped). So an upgrade whose
  reload comes after the old worker noticed the new database still keeps a runs worker.
"""

import os
import signal
import subprocess
import sys
import time
from dataclasses import dataclass

from django.core.management.base import BaseCommand

from chalkcompute.runtime.parent import die_with_parent
from common.database import EXIT_OLDER_THAN_DATABASE
from runs.worker import READY_FD, runs_worker_pool

CHECK_SECONDS = 0.2
RESPAWN_SECONDS = 2.0  # before a worker that died on its own is started again (as RestartSec=)


def celery_command(hostname: str, loglevel: str) -> list[str]:
    return [
        sys.executable, "-m", "celery", "--app=chalkweb", "worker", "--queues=chalk-runs",
        *runs_worker_pool(), f"--hostname={hostname}", f"--loglevel={loglevel}",
    ]  # fmt: skip


@dataclass
class Worker:
    """A celery worker child, and the pipe on which it says that it is ready."""

    process: subprocess.Popen
    ready_pipe: int
    ready: bool = False

    @property
    def pid(self) -> int:
        return self.process.pid

    def became_ready(self) -> bool:
        if not self.ready:
            try:
                self.ready = bool(os.read(self.ready_pipe, 16))
            except BlockingIOError:
                pass
        return self.ready

    def warm_shutdown(self) -> None:
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)

    def ended(self) -> bool:
        if self.process.poll() is None:
            return False
        if self.ready_pipe >= 0:
            os.close(self.ready_pipe)
            self.ready_pipe = -1
        return True


class Supervisor:
    def __init__(self, command: list[str], say) -> None:
        self.command = command
        self.say = say
        self.serving: Worker | None = None
        self.starting: Worker | None = None  # the new worker of a handover, not ready yet
        self.draining: list[Worker] = []
        self.reload_asked = False
        self.stop_asked = False
        # The worker started in place of one that found its code older than the database.
        self.replacing_older: Worker | None = None

    def start(self) -> Worker:
        read, write = os.pipe()
        os.set_blocking(read, False)
        process = subprocess.Popen(
            self.command,
            env={**os.environ, READY_FD: str(write)},
            pass_fds=(write,),
            # Only this process signals it (a terminal's Ctrl-C reaches this one alone), and
            # it dies with this process, as systemd would kill it.
            start_new_session=True,
            preexec_fn=die_with_parent,
        )
        os.close(write)
        return Worker(process, read)

    def serve(self) -> int:
        signal.signal(signal.SIGHUP, lambda *_: setattr(self, "reload_asked", True))
        for stop in (signal.SIGTERM, signal.SIGINT):
            signal.signal(stop, lambda *_: setattr(self, "stop_asked", True))
        self.serving = self.start()
        self.say(f"runs worker {self.serving.pid} started")
        while not self.stop_asked:
            if self.reload_asked:
                self.reload_asked = False
                self._hand_over()
            self._check_starting()
            self._check_draining()
            if self.replacing_older and self.replacing_older.became_ready():
                self.replacing_older = None  # it runs: a later upgrade may replace it again
            if self.serving.ended() and not self.stop_asked:
                code = self.serving.process.returncode
                if code == EXIT_OLDER_THAN_DATABASE and self.serving is not self.replacing_older:
                    self.say(
                        f"runs worker {self.serving.pid} stopped: its code is older than the "
                        "database; starting one on the code installed now"
                    )
                    self.serving = self.replacing_older = self.starting or self.start()
                    self.starting = None
                    continue
                if not (self.starting or self.draining):
                    return code or 1  # systemd's Restart=on-failure starts the unit again
                self.say(f"runs worker {self.serving.pid} exited with status {code}")
                self.serving, self.starting = self.starting or self._start_again(), None
            time.sleep(CHECK_SECONDS)
        return self._stop()

    def _hand_over(self) -> None:
        if self.starting:
            self.say("a reload is already under way: the new runs worker is not ready yet")
            return
        self.starting = self.start()
        self.say(
            f"reload: runs worker {self.starting.pid} is starting; runs worker "
            f"{self.serving.pid} hands over to it once it is ready"
        )

    def _check_starting(self) -> None:
        if self.starting is None:
            return
        if self.starting.became_ready():
            old, self.serving, self.starting = self.serving, self.starting, None
            old.warm_shutdown()
            self.draining.append(old)
            self.say(
                f"runs worker {self.serving.pid} takes new runs; runs worker {old.pid} "
                "finishes the runs it has, then exits"
            )
        elif self.starting.ended():
            self.say(
                f"reload failed: the new runs worker exited with status "
                f"{self.starting.process.returncode} before it was ready (see its lines "
                f"above); runs worker {self.serving.pid} keeps taking runs"
            )
            self.starting = None

    def _check_draining(self) -> None:
        for worker in [worker for worker in self.draining if worker.ended()]:
            self.draining.remove(worker)
            self.say(f"runs worker {worker.pid} finished its runs and exited")

    def _start_again(self) -> Worker:
        time.sleep(RESPAWN_SECONDS)
        worker = self.start()
        self.say(f"runs worker {worker.pid} started in its place")
        return worker

    def _stop(self) -> int:
        told = [self.serving, *([self.starting] if self.starting else [])]
        self.say("stopping: every runs worker finishes the runs it has, then exits")
        for worker in told:  # those draining were told already (once is celery's warm stop)
            worker.warm_shutdown()
        everyone = [*told, *self.draining]
        for worker in everyone:
            worker.process.wait()
            worker.ended()
        return self.serving.process.returncode


class Command(BaseCommand):
    help = (
        "Run the runs worker (celery, queue chalk-runs); SIGHUP hands over to a new one "
        "without a pause in runs, SIGTERM waits for the runs in flight."
    )

    def add_arguments(self, parser):
        parser.add_argument("--hostname", default="runs@%h", help="celery's node name")
        parser.add_argument("--loglevel", default="INFO")

    def handle(self, *args, hostname: str, loglevel: str, **options):
        def say(text: str) -> None:
            self.stderr.write(f"runs_worker: {text}")
            self.stderr.flush()

        sys.exit(Supervisor(celery_command(hostname, loglevel), say).serve())
