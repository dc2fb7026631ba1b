"""The production web process: gunicorn with chalkweb/gunicorn_conf.py, started as a real
process on the test database. It serves the console's static files, the API and the health
check, writes an access log, reloads gracefully on SIGHUP without failing a request, and
refuses a setting it cannot understand. `make run` uses it whenever DATABASE_URL is set and
runserver only for the embedded default."""

import os
import re
import signal
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from pathlib import Path

import psutil
import pytest
from django.conf import settings

from chalkweb.management.commands.run_platform import web_command
from tests.personas import make_token
from tests.runs.support import database_url
from tests.test_make_run import free_port

REPO = Path(__file__).resolve().parents[1]
COMMAND = ["-m", "gunicorn", "--config", "python:chalkweb.gunicorn_conf", "chalkweb.wsgi"]

pytestmark = pytest.mark.slow


def gunicorn_env(port: int, **extra: str) -> dict[str, str]:
    return {
        **os.environ,
        "DATABASE_URL": database_url(),
        "CHALK_DATA_DIR": str(settings.DATA_DIR),
        "CHALK_WEB_BIND": f"127.0.0.1:{port}",
        "CHALK_WEB_WORKERS": "2",
        **extra,
    }


def get(url: str, token: str | None = None) -> tuple[int, bytes]:
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    try:
        with urllib.request.urlopen(urllib.request.Request(url, headers=headers), timeout=10) as r:
            return r.status, r.read()
    except urllib.error.HTTPError as error:
        return error.code, error.read()


@pytest.fixture
def gunicorn(transactional_db, tmp_path):
    port = free_port()
    log = tmp_path / "gunicorn.log"
    process = subprocess.Popen(
        [sys.executable, *COMMAND], cwd=REPO, env=gunicorn_env(port),
        stdout=log.open("w"), stderr=subprocess.STDOUT, start_new_session=True,
    )  # fmt: skip
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 60
    while True:
        try:
            if get(f"{url}/healthz")[0] == 200:
                break
        except OSError:
            pass
        assert process.poll() is None, log.read_text()
        assert time.monotonic() < deadline, log.read_text()
        time.sleep(0.2)
    yield process, url, log
    process.send_signal(signal.SIGTERM)
    process.wait(timeout=60)


def workers(process: subprocess.Popen) -> set[int]:
    return {child.pid for child in psutil.Process(process.pid).children()}


def test_it_serves_the_api_static_files_and_writes_an_access_log(gunicorn):
    process, url, log = gunicorn
    _, token = make_token("bench", role="viewer")

    assert get(f"{url}/api/v1/functions", token) == (
        200, b'{"count":0,"next":null,"previous":null,"results":[]}'
    )  # fmt: skip
    status, css = get(f"{url}/static/chalkweb.css")
    assert status == 200 and css == (REPO / "static" / "chalkweb.css").read_bytes()
    assert get(f"{url}/api/v1/functions")[0] == 401
    assert len(workers(process)) == 2
    time.sleep(0.5)
    assert re.search(
        r'127\.0\.0\.1 "GET /api/v1/functions HTTP/1\.1" 200 \d+ \d+ms', log.read_text()
    )
    assert re.search(r'"GET /static/chalkweb\.css HTTP/1\.1" 200', log.read_text())


def wait_until(predicate, timeout: float = 30) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.05)


def test_it_reloads_on_sighup_without_failing_a_request(gunicorn):
    process, url, _ = gunicorn
    before = workers(process)
    answers: list[int] = []
    stop = threading.Event()

    def load():
        while not stop.is_set():
            answers.append(get(f"{url}/healthz")[0])

    threads = [threading.Thread(target=load) for _ in range(4)]
    for thread in threads:
        thread.start()

    def wait_for_answers(count: int) -> None:
        wait_until(lambda: len(answers) >= count)

    wait_for_answers(5)
    process.send_signal(signal.SIGHUP)
    deadline = time.monotonic() + 30
    while not (len(workers(process)) == 2 and workers(process).isdisjoint(before)):
        assert time.monotonic() < deadline, "the workers were not replaced"
        time.sleep(0.1)
    wait_for_answers(len(answers) + 5)  # the new workers answer too
    stop.set()
    for thread in threads:
        thread.join()

    assert set(answers) == {200}


@pytest.mark.parametrize(
    "name, value, message",
    [
        ("CHALK_WEB_WORKERS", "many", "CHALK_WEB_WORKERS='many' is not a whole number"),
        ("CHALK_WEB_WORKERS", "0", "CHALK_WEB_WORKERS=0: use 1 or more"),
        ("CHALK_WEB_THREADS", "-1", "CHALK_WEB_THREADS=-1: use 1 or more"),
    ],
)
def test_it_refuses_to_start_with_a_setting_it_cannot_understand(db, name, value, message):
    result = subprocess.run(
        [sys.executable, *COMMAND], cwd=REPO, env=gunicorn_env(free_port(), **{name: value}),
        capture_output=True, text=True, timeout=60,
    )  # fmt: skip

    assert result.returncode != 0
    assert message in result.stdout + result.stderr


def test_make_run_serves_with_gunicorn_outside_the_embedded_default(settings):
    settings.CHALK_EMBEDDED = False
    assert web_command("python", "127.0.0.1", 8001) == [
        "python", *COMMAND[:-1], "--bind", "127.0.0.1:8001", "chalkweb.wsgi"
    ]  # fmt: skip

    settings.CHALK_EMBEDDED = True
    assert web_command("python", "127.0.0.1", 8001)[1:4] == [
        "manage.py",
        "runserver",
        "127.0.0.1:8001",
    ]
