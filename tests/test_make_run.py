"""`make run`'s command, as a new user meets it: `manage.py run_platform` on the embedded default
(SQLite and the filesystem broker in a fresh data folder, no DATABASE_URL, no broker URL). It
must print a login and a deploy line, serve the console, run a function deployed with the SDK
through the printed token, and stop every process it started on SIGTERM. Its terminal shows
runs, deploys and errors, but not the platform's own periodic tasks (the tick every second),
which would scroll the login and the deploy line away."""

import contextlib
import os
import re
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import psutil
import pytest

REPO = Path(__file__).resolve().parents[1]

pytestmark = pytest.mark.slow

FUNCTION = """
import chalkcompute


@chalkcompute.function(name="hello-make-run")
def hello() -> str:
    print("hello from make run")
    return "ok"


@chalkcompute.function(name="fail-make-run")
def fail() -> None:
    raise ValueError("rates feed is down")
"""
BANNER = [
    r"Chalkweb console: http://127\.0\.0\.1:\d+/",
    r"  data folder:    \S+",
    r"  runs:           (sandboxed with bubblewrap \(\S+\), as .+|NOT ISOLATED: Runs are not .+)",
    r"  login:          admin / \S+",
    r"Deploy from this machine with:",
    r"  export CHALK_COMPUTE_URL=\S+ CHALK_COMPUTE_TOKEN=\S+",
]
SEND_A_FAILING_TICK = (
    "from chalkweb.celery import app; app.send_task('runs.tasks.tick', args=['unexpected'])"
)
# What celery says about the platform's own periodic tasks (runs/beat.py), every second.
PERIODIC_CHATTER = re.compile(
    r"Sending due task chalkweb: |runs\.tasks\.(tick|reap|reconcile_kubernetes|prune_runs)\["
)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def embedded_env(data_dir: Path, **extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("DATABASE_", "CELERY_"))}
    env.pop("DJANGO_SETTINGS_MODULE", None)
    return {**env, "CHALK_DATA_DIR": str(data_dir), **extra}


def wait_for_line(process: subprocess.Popen, output: Path, pattern: str, timeout: float) -> str:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        found = re.search(pattern, output.read_text())
        if found:
            return found.group(0)
        assert process.poll() is None, f"run_platform exited:\n{output.read_text()}"
        time.sleep(0.2)
    raise AssertionError(f"no {pattern!r} within {timeout} s:\n{output.read_text()}")


def sdk_cli(url: str, token: str, folder: Path):
    """`chalkcompute` commands as a user types them in `folder`, with the printed token."""
    env = {**os.environ, "CHALK_COMPUTE_URL": url, "CHALK_COMPUTE_TOKEN": token}

    def cli(*args: str) -> subprocess.CompletedProcess:
        return subprocess.run(
            [sys.executable, "-m", "chalkcompute.cli", *args],
            env=env, cwd=folder, capture_output=True, text=True, timeout=180,
        )  # fmt: skip

    return cli


def wait_for_healthy(url: str, output: Path) -> None:
    """The web process starts beside the others: waits for its /healthz."""
    deadline = time.monotonic() + 60
    while True:
        try:
            with urllib.request.urlopen(f"{url}/healthz", timeout=5) as response:
                assert response.status == 200
            return
        except OSError:
            assert time.monotonic() < deadline, output.read_text()
            time.sleep(0.3)


def start_platform(tmp_path: Path, **extra: str) -> tuple[subprocess.Popen, Path, int]:
    port = free_port()
    output = tmp_path / "run_platform.log"
    process = subprocess.Popen(
        [sys.executable, "manage.py", "run_platform", "--port", str(port)],
        cwd=REPO,
        env=embedded_env(tmp_path / "data", **extra),
        stdout=output.open("w"),
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    return process, output, port


def stop_platform(process: subprocess.Popen) -> list[psutil.Process]:
    """SIGTERM, as a service manager sends it; returns the children still alive 30 s later."""
    children = psutil.Process(process.pid).children(recursive=True)
    process.send_signal(signal.SIGTERM)
    process.wait(timeout=30)
    _, alive = psutil.wait_procs(children, timeout=30)
    for child in alive:
        child.kill()
    return alive


def test_make_run_serves_the_console_and_runs_a_deployed_function(tmp_path):
    process, output, port = start_platform(tmp_path)
    try:
        deploy_line = wait_for_line(
            process, output, r"export CHALK_COMPUTE_URL=\S+ CHALK_COMPUTE_TOKEN=\S+", 120
        )
        assert re.search(r"login:\s+admin / \S+", output.read_text())
        up = time.monotonic()
        url, token = re.findall(r"=(\S+)", deploy_line)
        assert url == f"http://127.0.0.1:{port}"
        wait_for_healthy(url, output)

        (tmp_path / "hello_make_run.py").write_text(FUNCTION)
        cli = sdk_cli(url, token, tmp_path)

        deployed = cli("deploy", "hello_make_run.py")
        assert deployed.returncode == 0, deployed.stderr
        started = cli("run", "hello-make-run")
        assert started.returncode == 0, started.stderr
        run_id = re.search(r"Started run (\d+)", started.stdout).group(1)
        followed = cli("logs", run_id, "--follow")
        assert followed.returncode == 0, followed.stdout + followed.stderr
        assert "hello from make run" in followed.stdout

        started = cli("run", "fail-make-run")
        assert started.returncode == 0, started.stderr
        failed_id = re.search(r"Started run (\d+)", started.stdout).group(1)
        followed = cli("logs", failed_id, "--follow")
        assert followed.returncode == 3, followed.stdout + followed.stderr
        assert 'raise ValueError("rates feed is down")' in followed.stderr  # the traceback
        assert followed.stderr.splitlines()[-1] == (
            f"run {failed_id} failed: ValueError: rates feed is down"
        )

        # Beat has sent the tick every second all along; none of it reached the terminal,
        # which still starts with the login and the export line, and shows the real work.
        wait_for_line(process, output, r"beat: Starting\.\.\.", 60)
        time.sleep(max(0.0, up + 6 - time.monotonic()))  # a few ticks at least, in any case
        text = output.read_text()
        assert PERIODIC_CHATTER.search(text) is None, text
        banner = text.splitlines()[: len(BANNER)]
        assert len(banner) == len(BANNER) and all(map(re.fullmatch, BANNER, banner)), text
        assert "[tasks]" not in text  # no celery banners pushing it away either
        assert '"PUT /api/v1/functions/fail-make-run HTTP/1.1" 201' in text  # the deploy
        assert text.count("Task runs.tasks.run_due_attempts[") >= 4  # two runs, each twice

        # A periodic task that fails still says so: a tick sent an argument it does not take.
        subprocess.run(
            [sys.executable, "-c", SEND_A_FAILING_TICK],
            cwd=REPO, env=embedded_env(tmp_path / "data"), check=True, timeout=60,
        )  # fmt: skip
        wait_for_line(
            process,
            output,
            r"ERROR/.+ Task runs\.tasks\.tick\[\S+\] raised unexpected: TypeError",
            60,
        )
    finally:
        alive = stop_platform(process)
    assert alive == [], f"still running after SIGTERM: {[p.cmdline() for p in alive]}"


def test_make_run_starts_the_kubernetes_watcher_on_that_executor(tmp_path):
    """No cluster: the watcher starts, cannot reach one, and keeps retrying without taking the
    platform down."""
    process, output, _ = start_platform(
        tmp_path,
        CHALK_EXECUTOR="kubernetes",
        CHALK_K8S_API_URL=f"http://127.0.0.1:{free_port()}",  # nothing listens there
        CHALK_K8S_INSTALL_AT_START="true",
    )
    try:
        wait_for_line(process, output, r"Watching the attempt Jobs in namespace chalkweb-runs", 120)
        wait_for_line(process, output, r"kubernetes watcher: .+; retrying in \d+ s", 60)
        assert process.poll() is None, output.read_text()
    finally:
        alive = stop_platform(process)
    assert alive == []


def test_it_stops_everything_when_what_started_it_is_killed(tmp_path):
    """`kill <pid of make>`: make ends on SIGTERM without passing it on to its recipe. A shell
    that starts the platform and waits for it does the same."""
    output = tmp_path / "run_platform.log"
    command = f'"{sys.executable}" manage.py run_platform --port {free_port()} & wait'
    starter = subprocess.Popen(
        ["sh", "-c", command], cwd=REPO, env=embedded_env(tmp_path / "data"),
        stdout=output.open("w"), stderr=subprocess.STDOUT, start_new_session=True,
    )  # fmt: skip
    alive = None
    try:
        wait_for_line(starter, output, r"runs-\d+@\S+ ready", 120)
        started = psutil.Process(starter.pid).children(recursive=True)
        assert len(started) >= 5, [p.cmdline() for p in started]  # the platform and its four

        starter.send_signal(signal.SIGTERM)
        starter.wait(timeout=30)
        _, alive = psutil.wait_procs(started, timeout=60)
    finally:
        with contextlib.suppress(ProcessLookupError):  # what is left: its own session
            os.killpg(starter.pid, signal.SIGKILL)
    assert alive == [], f"still running: {[p.cmdline() for p in alive]}"
    assert "what started the platform has ended; stopping" in output.read_text()
