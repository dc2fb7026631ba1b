"""Chalkweb has no rolling upgrade: a process whose code is older than the database refuses to
run beside it and says so, and nothing it would have thrown away is lost. Real celery workers
and beat on the test database and the tests' broker; "a newer Chalkweb" is what a newer
install leaves behind: a row in django_migrations this code does not know, or a task message
that says it was sent by a newer version."""

import os
import subprocess
import sys
import time

import pytest
from django.conf import settings
from django.core.management import CommandError, call_command
from django.db import connection
from django.utils import timezone

from chalkcompute.version import VERSION
from chalkweb.celery import app, purge_queues
from common.database import EXIT_OLDER_THAN_DATABASE, code_migrations
from runs.services import run_trigger
from runs.versions import CODE_HEADER
from runs.worker import WORKER_HEARTBEAT_SECONDS
from tests.personas import acting
from tests.runs.support import database_url, deploy, wait_for, wait_for_run
from tests.test_make_run import free_port
from tests.test_web_server import COMMAND, REPO, gunicorn_env

NEWER_MIGRATION = ("runs", "0999_from_a_newer_chalkweb")
SENTENCE = (
    f"this machine's Chalkweb {VERSION} is older than its database: a newer Chalkweb applied 1 "
    "migration(s) this code does not know (runs.0999_from_a_newer_chalkweb); upgrade this "
    "machine's Chalkweb (git pull && make install) and start it again"
)


@pytest.fixture
def newer_database():
    """Call it to apply a newer Chalkweb's migration; removed at the end (a test's flush
    leaves django_migrations alone)."""

    def migrate_as_a_newer_chalkweb() -> None:
        with connection.cursor() as cursor:
            cursor.execute(
                "INSERT INTO django_migrations (app, name, applied) VALUES (%s, %s, %s)",
                [*NEWER_MIGRATION, timezone.now()],
            )

    yield migrate_as_a_newer_chalkweb
    with connection.cursor() as cursor:
        cursor.execute(
            "DELETE FROM django_migrations WHERE app = %s AND name = %s", list(NEWER_MIGRATION)
        )


def exited(process, timeout: float) -> int:
    return wait_for(lambda: process.poll() is not None, timeout, 0.05) and process.returncode


@pytest.mark.slow
def test_a_worker_and_beat_refuse_to_start_beside_a_newer_database(platform, newer_database):
    newer_database()
    common = ["worker", "--loglevel", "INFO", "--without-mingle", "--without-gossip"]
    worker = platform._start("runs-worker", [*common, "-Q", "chalk-runs", "-n", "old@%h"], None)
    beat = platform._start("beat", ["beat", "--loglevel", "INFO"], None)

    assert exited(worker, 60) == EXIT_OLDER_THAN_DATABASE
    assert exited(beat, 60) == EXIT_OLDER_THAN_DATABASE
    for name in ("runs-worker", "beat"):
        log = platform.log(name)
        assert SENTENCE in log, log
        assert "ready." not in log and "Sending due task" not in log


@pytest.mark.slow
def test_a_running_worker_and_beat_stop_once_a_newer_chalkweb_migrates(platform, newer_database):
    platform.start_workers(concurrency=1)
    platform.start_beat()
    function = deploy("long-enough", "import time\ntime.sleep(8)\nreturn 'finished'")
    run = run_trigger(function=function, trigger="manual", actor=acting("test"), now=timezone.now())
    wait_for(lambda: run.attempts.filter(status="running").exists(), 120, message="the run")

    newer_database()
    migrated = time.monotonic()

    took = {}
    for name in ("runs-worker", "control-worker", "beat"):
        code = exited(platform.processes[name], WORKER_HEARTBEAT_SECONDS + 20)
        took[name] = time.monotonic() - migrated
        assert code == EXIT_OLDER_THAN_DATABASE, (name, code, platform.log(name))
        assert SENTENCE in platform.log(name), platform.log(name)
    print(f"seconds from the newer migration to each exit: {took}")
    # The runs worker finished the run it had (a warm shutdown, not a lost attempt); the others
    # stopped within a heartbeat period and the few seconds a warm shutdown takes.
    assert wait_for_run(run.id).status == "succeeded"
    assert took["control-worker"] <= WORKER_HEARTBEAT_SECONDS + 5
    assert took["beat"] <= WORKER_HEARTBEAT_SECONDS + 5


def queued(queue: str) -> list[str]:
    """The names of the tasks waiting in `queue`, taken off it."""
    names = []
    with app.connection_for_read() as connection_:
        channel = connection_.default_channel
        while (message := channel.basic_get(queue=queue, no_ack=True)) is not None:
            names.append(message.headers["task"])
    return names


@pytest.mark.slow
def test_a_worker_puts_back_a_newer_chalkweb_task_and_stops(platform):
    platform.start_workers(control=True)
    newer = {CODE_HEADER: {"version": "99.0.0", "migrations": ["runs.0999_newer"]}}
    sent = time.monotonic()
    # A task this code does not have, and one of its own with an argument it does not take:
    # celery would discard the first ("unregistered task") and fail the second (TypeError).
    app.send_task("alerts.tasks.from_a_newer_chalkweb", args=[1], queue="chalk-control",
                  headers=newer)  # fmt: skip
    app.send_task("runs.tasks.reap", kwargs={"new_argument": 1}, queue="chalk-control",
                  headers=newer)  # fmt: skip

    code = exited(platform.processes["control-worker"], 30)
    print(f"seconds from the newer task to the worker's exit: {time.monotonic() - sent:.2f}")

    log = platform.log("control-worker")
    assert code == EXIT_OLDER_THAN_DATABASE, log
    assert (
        f"this machine's Chalkweb {VERSION} is older than the Chalkweb 99.0.0 (with migrations "
        "runs.0999_newer) that sent it the task alerts.tasks.from_a_newer_chalkweb: the task is "
        "put back in its queue for a worker of that version; upgrade this machine's Chalkweb "
        "(git pull && make install) and start it again"
    ) in log
    assert "unregistered task" not in log and "TypeError" not in log, log
    assert sorted(queued("chalk-control")) == [
        "alerts.tasks.from_a_newer_chalkweb",
        "runs.tasks.reap",
    ]
    # The runs worker, which was sent nothing newer, is still running.
    assert platform.processes["runs-worker"].poll() is None


@pytest.mark.slow
def test_a_web_refuses_to_serve_beside_a_newer_database(transactional_db, newer_database, tmp_path):
    newer_database()
    log = tmp_path / "gunicorn.log"
    web = subprocess.run(
        [sys.executable, *COMMAND], cwd=REPO, env=gunicorn_env(free_port()),
        stdout=log.open("w"), stderr=subprocess.STDOUT, timeout=60,
    )  # fmt: skip
    assert web.returncode == 4, log.read_text()  # gunicorn's "App failed to load"
    assert SENTENCE in log.read_text()


def test_every_task_message_names_the_code_that_sent_it():
    purge_queues()
    # A process that only sets Django up and sends, as the web does.
    send = "from runs import dispatch; dispatch.tell_alerts_run_ended(1)"
    env = {**os.environ, "DATABASE_URL": database_url(), "CHALK_DATA_DIR": str(settings.DATA_DIR),
           "CELERY_BROKER_URL": settings.CELERY_BROKER_URL}  # fmt: skip
    subprocess.run([sys.executable, "manage.py", "shell", "-c", send], cwd=REPO, check=True,
                   env=env)  # fmt: skip
    with app.connection_for_read() as connection_:
        message = connection_.default_channel.basic_get(queue="chalk-control", no_ack=True)
    assert message.headers["task"] == "alerts.tasks.run_ended"
    assert message.headers[CODE_HEADER] == {"version": VERSION, "migrations": code_migrations()}


@pytest.mark.django_db(transaction=True)
def test_make_run_and_the_kubernetes_watcher_refuse_beside_a_newer_database(
    newer_database, settings
):
    newer_database()
    with pytest.raises(CommandError) as refused:
        call_command("run_platform", port=free_port())
    assert (str(refused.value), refused.value.returncode) == (SENTENCE, EXIT_OLDER_THAN_DATABASE)

    settings.CHALK_EXECUTOR = "kubernetes"
    with pytest.raises(CommandError) as refused:
        call_command("watch_kubernetes")
    assert (str(refused.value), refused.value.returncode) == (SENTENCE, EXIT_OLDER_THAN_DATABASE)
