"""manage.py runs_worker's handover, with a stand-in for celery (a real child process that says
it is ready on the pipe, as runs.worker does at worker_ready, and drains for a while at
SIGTERM): a reload starts a new worker and warm-shuts the old one only once the new one is
ready; a new worker that fails leaves the old one serving; a stop waits for every worker. The
real celery worker's handover, with runs in flight, is in tests/test_systemd.py."""

import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

from tests.runs.support import wait_for

REPO = Path(__file__).resolve().parents[2]

# A worker: fails before it is ready while `fail` exists, and refuses as code older than the
# database (78) while `older` exists; else says "ready" on the pipe, and at SIGTERM "drains" for
# a second before it exits 0. It stops by itself with 78 once `older-<its pid>` appears.
WORKER = """
import os, signal, sys, time
folder = sys.argv[1]
print(f"worker {os.getpid()} up", flush=True)
if os.path.exists(os.path.join(folder, "fail")):
    sys.exit(3)
if os.path.exists(os.path.join(folder, "older")):
    sys.exit(78)
stopping = []
signal.signal(signal.SIGTERM, lambda *_: stopping.append(1))
fd = int(os.environ.pop("CHALK_WORKER_READY_FD"))
os.write(fd, b"ready")
os.close(fd)
while not stopping:
    if os.path.exists(os.path.join(folder, f"older-{os.getpid()}")):
        sys.exit(78)
    time.sleep(0.05)
print(f"worker {os.getpid()} draining", flush=True)
time.sleep(1)
print(f"worker {os.getpid()} done", flush=True)
"""

SUPERVISOR = """
import sys
import django
django.setup()
from runs.management.commands.runs_worker import Supervisor
say = lambda text: print(f"runs_worker: {text}", flush=True)
sys.exit(Supervisor([sys.executable, "-c", sys.argv[1], sys.argv[2]], say).serve())
"""


@pytest.fixture
def supervisor(tmp_path):
    log = (tmp_path / "log").open("w")
    process = subprocess.Popen(
        [sys.executable, "-c", SUPERVISOR, textwrap.dedent(WORKER), str(tmp_path)],
        cwd=REPO, stdout=log, stderr=subprocess.STDOUT, env={**os.environ},
    )  # fmt: skip
    yield process, tmp_path / "log"
    if process.poll() is None:
        process.kill()
        process.wait()


def said(log: Path, text: str) -> bool:
    return text in log.read_text()


def worker_pids(log: Path) -> list[int]:
    return [int(line.split()[1]) for line in log.read_text().splitlines() if line.endswith(" up")]


def alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    state = Path(f"/proc/{pid}/stat").read_text().split(")")[-1].split()[0]
    return state != "Z"


@pytest.mark.slow
def test_a_reload_hands_over_only_to_a_worker_that_is_ready(supervisor):
    process, log = supervisor
    wait_for(lambda: said(log, "worker") and worker_pids(log), 30, message=log.read_text)
    (first,) = worker_pids(log)

    (log.parent / "fail").touch()
    process.send_signal(signal.SIGHUP)
    wait_for(lambda: said(log, "reload failed"), 30, message=log.read_text)
    assert "exited with status 3 before it was ready" in log.read_text()
    assert alive(first), "the old worker must keep serving"
    assert not said(log, f"worker {first} draining")

    (log.parent / "fail").unlink()
    process.send_signal(signal.SIGHUP)
    wait_for(lambda: said(log, "takes new runs"), 30, message=log.read_text)
    second = worker_pids(log)[-1]
    assert f"runs worker {second} takes new runs; runs worker {first} finishes" in log.read_text()
    wait_for(lambda: said(log, f"runs worker {first} finished its runs"), 30, message=log.read_text)
    assert said(log, f"worker {first} done")
    assert alive(second)

    process.send_signal(signal.SIGTERM)
    assert process.wait(timeout=30) == 0
    assert said(log, f"worker {second} done"), "a stop waits for the worker's drain"
    assert not alive(second)


@pytest.mark.slow
def test_a_stop_during_a_handover_waits_for_both_workers(supervisor):
    process, log = supervisor
    wait_for(lambda: worker_pids(log), 30, message=log.read_text)
    process.send_signal(signal.SIGHUP)
    wait_for(lambda: said(log, "takes new runs"), 30, message=log.read_text)
    started = time.monotonic()

    process.send_signal(signal.SIGTERM)

    assert process.wait(timeout=30) == 0
    first, second = worker_pids(log)
    assert said(log, f"worker {first} done") and said(log, f"worker {second} done")
    assert time.monotonic() - started >= 0.9  # the second one's drain was waited for


@pytest.mark.slow
def test_a_worker_older_than_the_database_is_replaced_by_one_on_the_code_installed_now(
    supervisor,
):
    process, log = supervisor
    wait_for(lambda: worker_pids(log), 30, message=log.read_text)
    (first,) = worker_pids(log)

    (log.parent / f"older-{first}").touch()  # another process migrated; this code is older

    wait_for(lambda: len(worker_pids(log)) == 2, 30, message=log.read_text)
    second = worker_pids(log)[-1]
    assert said(log, f"runs worker {first} stopped: its code is older than the database")
    time.sleep(0.5)
    assert process.poll() is None and alive(second), log.read_text()

    # Once that one runs, a later upgrade replaces it again; a replacement that refuses too
    # (the code installed is still older) stops the runs worker with 78, which systemd keeps.
    (log.parent / "older").touch()
    (log.parent / f"older-{second}").touch()
    assert process.wait(timeout=30) == 78, log.read_text()
    assert len(worker_pids(log)) == 3
