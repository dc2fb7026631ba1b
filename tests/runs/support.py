"""What tests of runs share: functions deployed as the platform deploys them, waits for a run
to end, the real processes (celery workers and beat on the test database, the runner talking to
the live server, a real broker: CELERY_BROKER_URL, Redis in CI) that the `platform` fixture
starts, and a gate on this machine's own address for a sandboxed run to reach."""

import datetime as dt
import os
import signal
import socket
import subprocess
import sys
import textwrap
import threading
import time
from pathlib import Path

from django.conf import settings
from django.db import connection
from django.utils import timezone

from chalkcompute.image import Image
from chalkcompute.runtime.parent import die_with_parent
from chalkcompute.spec import FunctionSpec
from runs import logs as run_logs
from runs import services as run_services
from runs.beat import ensure_periodic_tasks
from runs.models import Run
from scheduling.models import Function
from scheduling.services import function_deploy
from tests.database import settle_database
from tests.personas import acting

REPO = Path(__file__).resolve().parents[2]


def database_url() -> str:
    db = connection.settings_dict
    if db["ENGINE"].endswith("sqlite3"):
        return f"sqlite:///{db['NAME']}"
    auth = db["USER"] + (f":{db['PASSWORD']}" if db["PASSWORD"] else "")
    return f"postgres://{auth}@{db['HOST'] or '127.0.0.1'}:{db['PORT'] or 5432}/{db['NAME']}"


class Platform:
    """Starts and stops Chalkweb's processes for one test."""

    def __init__(self, live_server_url: str, logs: Path) -> None:
        self.logs = logs
        self.processes: dict[str, subprocess.Popen] = {}
        self.env = {
            **os.environ,
            "DATABASE_URL": database_url(),
            "CHALK_DATA_DIR": str(settings.DATA_DIR),
            "CELERY_BROKER_URL": settings.CELERY_BROKER_URL,
            "CHALK_RUNNER_SERVER_URL": live_server_url,
            "CHALK_PUBLIC_URL": live_server_url,
            "CHALK_HEARTBEAT_TIMEOUT_SECONDS": "4",
            "CHALK_REDISPATCH_SECONDS": "5",
            "CHALK_DB_CONN_MAX_AGE": "0",
        }

    def _start(self, name: str, args: list[str], ready: str | None) -> subprocess.Popen:
        log = open(self.logs / f"{name}.log", "w")
        process = subprocess.Popen(
            [sys.executable, "-m", "celery", "-A", "chalkweb", *args],
            cwd=REPO, env=self.env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True,
            preexec_fn=die_with_parent,  # a killed test run leaves no worker behind
        )  # fmt: skip
        self.processes[name] = process
        if ready:
            deadline = time.monotonic() + 60
            while ready not in (self.logs / f"{name}.log").read_text():
                assert process.poll() is None, f"{name} exited:\n{self.log(name)}"
                assert time.monotonic() < deadline, f"{name} did not start:\n{self.log(name)}"
                time.sleep(0.1)
        return process

    def start_workers(self, concurrency: int = 2, control: bool = True) -> None:
        common = ["worker", "--loglevel", "INFO", "--without-mingle", "--without-gossip"]
        self._start(
            "runs-worker",
            [
                *common,
                "-Q",
                "chalk-runs",
                "--pool",
                "threads",
                "-c",
                str(concurrency),
                "-n",
                f"runs-{os.getpid()}@%h",
            ],  # fmt: skip
            "ready.",
        )
        if not control:
            return
        self._start(
            "control-worker",
            [*common, "-Q", "chalk-control", "-c", "2", "-n", f"control-{os.getpid()}@%h"],
            "ready.",
        )

    def start_beat(self, name: str = "beat") -> None:
        ensure_periodic_tasks({"runs.tasks.reap": 2})
        pidfile = self.logs / f"{name}.pid"
        self._start(
            name,
            ["beat", "--loglevel", "INFO", "--pidfile", str(pidfile), "--max-interval", "1"],
            "beat: Starting",
        )

    def kill(self, name: str) -> None:
        """`kill -9` of the process alone: what it started must not outlive it."""
        self.processes[name].kill()
        self.processes[name].wait(timeout=30)

    def log(self, name: str) -> str:
        return (self.logs / f"{name}.log").read_text()

    def stop(self) -> None:
        for process in self.processes.values():
            if process.poll() is None:
                os.killpg(process.pid, signal.SIGKILL)  # the test is over: no need to drain
        for process in self.processes.values():
            try:
                process.wait(timeout=15)
            except subprocess.TimeoutExpired:
                os.killpg(process.pid, signal.SIGKILL)
        settle_database()


def host_address() -> str:
    """This machine's own non-loopback IPv4 address: a run's stand-in for the internet (a
    sandboxed run reaches it as it reaches any other machine, and never the loopback). The
    address a UDP socket would send from; no packet is sent."""
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as probe:
        probe.connect(("192.0.2.1", 9))  # TEST-NET-1: routed by the default route, if any
        address = probe.getsockname()[0]
    assert not address.startswith("127."), f"no non-loopback address here ({address})"
    return address


class Gate:
    """A TCP port on this machine's non-loopback address (host_address) that functions
    connect to, the one thing a sandboxed run and the test share (no folder of the test's is
    in the sandbox, and the loopback is not the run's). The n-th connection is answered
    `answers[n]` (the last one again once they run out) and closed, or, with `hold`, kept open
    until `release()`."""

    def __init__(self, *answers: bytes, hold: bool = False, address: str | None = None) -> None:
        self.answers, self.hold = answers, hold
        self.connections = 0
        self.held: list[socket.socket] = []
        self.address = address or host_address()
        family = socket.AF_INET6 if ":" in self.address else socket.AF_INET
        self.server = socket.create_server((self.address, 0), family=family)
        self.port = self.server.getsockname()[1]
        threading.Thread(target=self._serve, daemon=True).start()

    def _serve(self) -> None:
        while True:
            try:
                peer, _ = self.server.accept()
            except OSError:
                return
            self.connections += 1
            if self.hold:
                self.held.append(peer)
                continue
            with peer:
                peer.sendall(self.answers[min(self.connections, len(self.answers)) - 1])

    def client(self) -> str:
        """A function's code that connects and returns what the gate answered (b"" once
        released)."""
        address = (self.address, self.port)
        return f"__import__('socket').create_connection({address!r}).recv(64)"

    def release(self) -> None:
        for peer in self.held:
            peer.close()
        self.held = []

    def close(self) -> None:
        self.release()
        self.server.close()


def deploy(
    name: str,
    body: str,
    *,
    schedule: str | None = None,
    zone: str | None = None,
    retries=0,
    timeout=None,
    secrets=(),
    memory=None,
    gpu=None,
    overlap="skip",
    image: Image | None = None,
    alerts=None,
    now=None,
):
    """Deploys a module whose function `name` (underscored) has `body` as its code."""
    entrypoint = name.replace("-", "_")
    source = (
        "import chalkcompute\nfrom chalk import chalk_logger\n\n\n"
        + f"def {entrypoint}():\n"
        + textwrap.indent(textwrap.dedent(body).strip() + "\n", "    ")
    )
    spec = FunctionSpec(
        schedule=schedule, timezone=zone, image=image or Image.debian_slim(), secrets=secrets,
        memory=memory, gpu=gpu, retries=retries, timeout=timeout, overlap=overlap, alerts=alerts,
    )  # fmt: skip
    result = function_deploy(
        name=name, source=source, source_filename=f"{entrypoint}.py", entrypoint=entrypoint,
        spec=spec, actor=acting("test"), now=now or timezone.now(),
    )  # fmt: skip
    return result.function


def wait_for(predicate, timeout: float = 60, interval: float = 0.2, message=""):
    """`predicate()`'s first true value within `timeout` s. `message` says what was awaited; a
    callable one is asked at the timeout, to say what there was instead."""
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            said = message() if callable(message) else message
            raise AssertionError(f"timed out after {timeout} s waiting for {said or predicate}")
        time.sleep(interval)


def wait_for_run(
    run_id: int, statuses=("succeeded", "failed", "timed_out", "cancelled", "lost"), timeout=60
) -> Run:
    def finished():
        run = Run.objects.get(id=run_id)
        return run if run.status in statuses else None

    return wait_for(finished, timeout, message=f"run {run_id} to reach {statuses}")


def finish_run(
    function: Function,
    *,
    lines: list[tuple[str, str]] = (),
    status: str = "succeeded",
    error: tuple[str, str, str] | None = None,
    samples: list[tuple[float, int]] = (),
    at: dt.datetime | None = None,
    active: bool = False,
    returned: tuple[object, str] = (None, ""),
) -> Run:
    """A manual run that went through the platform's own services: claimed, begun, logging
    `lines` ((level, text)), sampling `samples` ((cpu_seconds, rss_bytes) one a second), and
    finished with `status` (and `error`: type, message, traceback; `returned`: the return value
    and its format) unless `active`."""
    now = at or timezone.now()
    run = run_services.run_trigger(
        function=function, trigger="manual", actor=acting("olivia"), now=now
    )
    attempt = run.attempts.get()
    attempt, _ = run_services.attempt_claim(
        attempt_id=attempt.id, executor="local", executor_ref="4242@worker-1", now=now
    )
    run_services.attempt_begin(attempt=attempt, now=now)
    if lines:
        run_logs.log_append(
            attempt=attempt,
            first_seq=0,
            lines=[
                {"ts": (now + dt.timedelta(seconds=i)).timestamp(), "level": level, "text": text}
                for i, (level, text) in enumerate(lines)
            ],
            now=now,
        )
    if samples:
        run_logs.usage_append(
            attempt=attempt,
            samples=[
                {
                    "ts": (now + dt.timedelta(seconds=i)).timestamp(),
                    "cpu_seconds": cpu,
                    "rss_bytes": rss,
                }
                for i, (cpu, rss) in enumerate(samples)
            ],
            now=now,
        )
    if not active:
        error_type, message, traceback = error or ("", "", "")
        run_services.attempt_finish(
            attempt=attempt,
            status=status,
            now=now + dt.timedelta(seconds=max(len(lines), len(samples), 1)),
            exit_code=0 if status == "succeeded" else 1,
            error_type=error_type,
            error_message=message,
            traceback=traceback,
            return_value=returned[0],
            return_format=returned[1],
        )
    return Run.objects.get(id=run.id)
