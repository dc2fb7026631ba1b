"""Runs end to end: real celery workers and beat, the runner over HTTP to the live server."""

import datetime as dt
import functools
import os
import subprocess
import sys
import threading
import time
import zipfile
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer

import pytest
from django.utils import timezone
from rest_framework.test import APIClient

from chalkcompute.image import Image
from runs import scheduler
from runs.models import Attempt, ImageBuild, LogLine, Run, UsageSample
from runs.services import run_cancel, run_trigger
from scheduling.models import Function
from scheduling.services import function_pause, function_resume, secret_set
from tests.personas import PLATFORM, acting, make_token
from tests.runs.support import Gate, deploy, host_address, wait_for, wait_for_run

pytestmark = pytest.mark.slow


def trigger(function: Function) -> Run:
    return run_trigger(
        function=function, trigger="manual", actor=acting("test"), now=timezone.now()
    )


def log_texts(run: Run) -> list[str]:
    """The run's log, without the platform's warning that runs are not isolated (a machine
    without bubblewrap; tests/runs/test_sandbox.py tests it)."""
    return list(
        LogLine.objects.filter(attempt__run=run)
        .exclude(stream="system", text__startswith="Runs are not isolated")
        .order_by("id")
        .values_list("text", flat=True)
    )


def test_it_runs_a_function_now_with_its_logs_and_usage_visible_through_the_api(platform):
    platform.start_workers()
    function = deploy(
        "hello",
        """
        import time
        chalk_logger.info("refresh started")
        print("plain print")
        chalk_logger.warning("%s rates", 3)
        busy_until = time.time() + 2.5
        while time.time() < busy_until:
            pass
        return {"rates": 3}
        """,
    )
    run = wait_for_run(trigger(function).id)

    assert run.status == "succeeded", run.status_reason
    _, token = make_token("reader")
    api = APIClient(HTTP_AUTHORIZATION=f"Bearer {token}")
    detail = api.get(f"/api/v1/runs/{run.id}").json()
    assert detail["status"] == "succeeded"
    assert [a["status"] for a in detail["attempts"]] == ["succeeded"]
    assert detail["attempts"][0]["exit_code"] == 0
    assert (detail["return_value"], detail["return_format"]) == ({"rates": 3}, "json")
    logs = api.get(f"/api/v1/runs/{run.id}/logs").json()["results"]
    assert [(line["stream"], line["level"], line["text"]) for line in logs] == [
        ("stdout", "INFO", "refresh started"),
        ("stdout", "", "plain print"),
        ("stdout", "WARNING", "3 rates"),
    ]
    samples = UsageSample.objects.filter(attempt__run=run)
    assert samples.count() >= 2
    assert max(sample.cpu_percent for sample in samples) > 30  # the busy loop, seen per second
    assert detail["peak_memory_bytes"] > 1_000_000


def test_it_runs_a_cron_function_at_the_next_minute_boundary_once_even_with_two_beats(platform):
    platform.start_workers()
    platform.start_beat("beat-a")
    platform.start_beat("beat-b")
    function = deploy("every-minute", 'chalk_logger.info("tick")', schedule="* * * * *")
    slot = function.next_fire_at

    run = wait_for(
        lambda: Run.objects.filter(function=function).first(), timeout=75, message="the slot's run"
    )
    run = wait_for_run(run.id)
    time.sleep(3)  # both beats keep ticking: still one run for the slot

    assert run.status == "succeeded", run.status_reason
    assert list(Run.objects.filter(function=function).values_list("scheduled_for", flat=True)) == [
        slot
    ]
    assert log_texts(run) == ["tick"]
    assert run.started_at - slot < dt.timedelta(seconds=3)


def test_a_scheduled_run_knows_its_slot_and_last_success_and_so_do_the_programs_it_starts(
    platform,
):
    platform.start_workers()
    function = deploy(
        "catch-up",
        """
        import subprocess
        subprocess.run(["sh", "-c", "echo slot=$CHALK_RUN_SLOT"], check=True)
        run = chalkcompute.current_run()
        return {"slot": run.slot.isoformat(), "previous": run.previous_success_slot.isoformat(),
                "trigger": run.trigger, "attempt": run.attempt}
        """,
        schedule="* * * * *",
    )
    slot = timezone.now().replace(second=0, microsecond=0)  # the slot that just came
    Run.objects.create(
        function=function, version=function.current_version, trigger="schedule",
        scheduled_for=slot - dt.timedelta(minutes=2), status="succeeded", created_at=slot,
    )  # fmt: skip
    Function.objects.filter(id=function.id).update(next_fire_at=slot)
    scheduler.tick(now=slot)

    run = wait_for_run(Run.objects.get(function=function, scheduled_for=slot).id)

    assert run.status == "succeeded", run.status_reason
    assert log_texts(run) == [f"slot={slot:%Y-%m-%dT%H:%M:%S}Z"]
    assert run.return_value == {
        "slot": slot.isoformat(),
        "previous": (slot - dt.timedelta(minutes=2)).isoformat(),
        "trigger": "schedule",
        "attempt": 1,
    }


def test_it_marks_an_attempt_lost_when_the_worker_is_killed_and_retries_it(platform):
    platform.start_workers()
    platform.start_beat()  # sends the reaper every 2 s
    first = Gate(b"first", b"again")  # runs are sandboxed: they share no folder with the test
    function = deploy(
        "survivor",
        f"""
        import time
        if {first.client()} == b"first":
            chalk_logger.info("attempt 1 working")
            time.sleep(120)
        chalk_logger.info("done")
        """,
        retries=1,
    )
    run = trigger(function)
    wait_for(lambda: LogLine.objects.filter(attempt__run=run).exists(), message="attempt 1 to log")

    platform.kill("runs-worker")

    lost = wait_for(
        lambda: Attempt.objects.filter(run=run, number=1, status="lost").first(),
        timeout=30,
        message="attempt 1 lost",
    )
    assert "no heartbeat for 4 seconds" in lost.reason
    platform.start_workers()
    run = wait_for_run(run.id)
    assert run.status == "succeeded", run.status_reason
    assert list(run.attempts.order_by("number").values_list("status", flat=True)) == [
        "lost",
        "succeeded",
    ]
    assert log_texts(run)[:1] == ["attempt 1 working"]
    assert log_texts(run)[-1] == "done"


def test_it_retries_a_failing_function_with_backoff_and_keeps_each_attempts_error(platform):
    platform.start_workers()
    platform.start_beat()
    function = deploy(
        "flaky",
        """
        chalk_logger.error("upstream said no")
        raise RuntimeError("rates service unavailable")
        """,
        retries={
            "max_retries": 2,
            "initial_delay": 1.0,
            "backoff_coefficient": 2.0,
            "max_delay": 10,
        },
    )
    run = wait_for_run(trigger(function).id)

    assert run.status == "failed"
    assert run.status_reason == "RuntimeError: rates service unavailable"
    attempts = list(run.attempts.order_by("number"))
    assert [(a.number, a.status, a.exit_code, a.error_type) for a in attempts] == [
        (1, "failed", 1, "RuntimeError"),
        (2, "failed", 1, "RuntimeError"),
        (3, "failed", 1, "RuntimeError"),
    ]  # fmt: skip
    assert 'raise RuntimeError("rates service unavailable")' in attempts[0].traceback
    # Backoff: 1 s before attempt 2, 2 s before attempt 3.
    assert attempts[1].not_before - attempts[0].finished_at == dt.timedelta(seconds=1)
    assert attempts[2].not_before - attempts[1].finished_at == dt.timedelta(seconds=2)
    assert attempts[2].started_at >= attempts[2].not_before
    for attempt in attempts:
        assert list(attempt.log_lines_set.values_list("text", flat=True)) == ["upstream said no"]


def test_it_stops_a_function_that_runs_past_its_timeout(platform):
    platform.start_workers()
    function = deploy(
        "sleepy",
        """
        import time
        chalk_logger.info("sleeping")
        time.sleep(60)
        """,
        timeout=2,
    )
    started = time.monotonic()
    run = wait_for_run(trigger(function).id)

    assert run.status == "timed_out"
    assert run.status_reason == "timed out after 2 seconds"
    assert time.monotonic() - started < 20
    assert run.attempts.get().status == "timed_out"


def test_it_kills_a_function_that_uses_more_memory_than_it_asked_for(platform):
    platform.start_workers()
    function = deploy(
        "hungry",
        """
        import time
        hog = bytearray(300 * 1024 * 1024)
        for i in range(0, len(hog), 4096):
            hog[i] = 1
        time.sleep(30)
        """,
        memory="128Mi",
    )
    run = wait_for_run(trigger(function).id)

    assert run.status == "failed"
    assert run.status_reason.startswith("OutOfMemory: out of memory: used ")
    assert "above its memory limit 128Mi (128.0 MiB)" in run.status_reason


def test_it_skips_a_slot_while_the_previous_run_is_still_running(platform):
    platform.start_workers()
    platform.start_beat()
    function = deploy("long", "import time\ntime.sleep(8)", schedule="0 0 1 1 *")
    first = trigger(function)
    wait_for(
        lambda: Run.objects.get(id=first.id).status == "running", message="the first run to start"
    )

    Function.objects.filter(id=function.id).update(
        next_fire_at=timezone.now() + dt.timedelta(seconds=1)
    )

    skipped = wait_for(
        lambda: Run.objects.filter(function=function, status="skipped").first(),
        timeout=20,
        message="a skipped slot",
    )
    assert skipped.status_reason == 'the previous run was still active (overlap="skip")'
    assert wait_for_run(first.id).status == "succeeded"


def test_it_runs_nothing_while_paused_and_runs_again_after_resume(platform):
    platform.start_workers()
    platform.start_beat()
    function = deploy("pausable", 'chalk_logger.info("ran")', schedule="0 0 1 1 *")
    function = function_pause(
        function=function, actor=acting("alice"), reason="vendor outage", now=timezone.now()
    )
    time.sleep(3)  # beat ticks every second: nothing is due while paused
    assert not Run.objects.exists()

    function_resume(actor=PLATFORM, function=function, now=timezone.now())
    Function.objects.filter(id=function.id).update(
        next_fire_at=timezone.now() + dt.timedelta(seconds=1)
    )

    run = wait_for(
        lambda: Run.objects.filter(function=function).first(),
        timeout=20,
        message="a run after resume",
    )
    assert wait_for_run(run.id).status == "succeeded"


def test_it_cancels_a_running_function(platform):
    platform.start_workers()
    function = deploy("endless", 'import time\nchalk_logger.info("begun")\ntime.sleep(600)')
    run = trigger(function)
    wait_for(lambda: LogLine.objects.filter(attempt__run=run).exists(), message="the run to log")

    assert run_cancel(run=run, actor=acting("alice"), now=timezone.now())

    run = wait_for_run(run.id, timeout=20)
    assert run.status == "cancelled"
    assert run.attempts.get().status == "cancelled"


def test_it_cancels_a_queued_run_at_once(platform):
    function = deploy("never-started", "pass")
    run = trigger(function)  # no worker is running: the run stays queued

    assert run_cancel(run=run, actor=acting("alice"), now=timezone.now())

    run.refresh_from_db()
    assert (run.status, run.status_reason) == ("cancelled", "cancelled by alice")


def test_it_gives_secrets_as_environment_variables_and_masks_them_in_logs(platform):
    platform.start_workers()
    secret_set(actor=PLATFORM, name="EXCHANGE_API_KEY", value="sk-live-123456", now=timezone.now())
    function = deploy(
        "secretive",
        """
        import os
        key = os.environ["EXCHANGE_API_KEY"]
        print("key is", key)
        chalk_logger.info("length %d", len(key))
        assert "CHALK_ATTEMPT_TOKEN" not in os.environ
        assert "DATABASE_URL" not in os.environ
        raise ValueError(f"bad key {key}")
        """,
        secrets=["EXCHANGE_API_KEY"],
    )
    run = wait_for_run(trigger(function).id)

    attempt = run.attempts.get()
    assert log_texts(run) == ["key is ********", "length 14"]
    assert attempt.error_message == "bad key ********"
    assert "sk-live-123456" not in attempt.traceback
    assert run.status_reason == "ValueError: bad key ********"


def test_it_runs_a_function_from_the_cli_and_follows_its_log(platform, live_server):
    platform.start_workers()
    deploy("cli-job", 'import time\nchalk_logger.info("one")\ntime.sleep(2)\nprint("two")')
    _, token = make_token("cli")
    env = {**os.environ, "CHALK_COMPUTE_URL": live_server.url, "CHALK_COMPUTE_TOKEN": token}
    cli = [sys.executable, "-m", "chalkcompute.cli"]

    started = subprocess.run(
        [*cli, "run", "cli-job"], env=env, capture_output=True, text=True, timeout=30
    )
    assert started.returncode == 0, started.stderr
    run_id = int(started.stdout.split()[2])
    assert started.stdout.splitlines()[1].strip() == f"logs     chalkcompute logs {run_id} --follow"

    followed = subprocess.run(
        [*cli, "logs", str(run_id), "--follow"], env=env, capture_output=True, text=True, timeout=60
    )

    assert followed.returncode == 0, followed.stderr
    assert [line[9:] for line in followed.stdout.splitlines()] == ["INFO one", "two"]
    assert followed.stderr.strip() == f"run {run_id} succeeded"


def test_it_explains_a_log_request_for_an_unknown_run(live_server):
    _, token = make_token("cli")
    env = {**os.environ, "CHALK_COMPUTE_URL": live_server.url, "CHALK_COMPUTE_TOKEN": token}
    result = subprocess.run(
        [sys.executable, "-m", "chalkcompute.cli", "logs", "999999"],
        env=env,
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert result.returncode == 4  # not found (chalkcompute --help lists the exit statuses)
    assert "no run 999999 here; list runs with GET /api/v1/runs" in result.stderr


def make_wheel(folder, name: str, source: str):
    """A minimal pure-Python wheel, so the test installs offline with no build step."""
    wheel = folder / f"{name}-1.0-py3-none-any.whl"
    info = f"{name}-1.0.dist-info"
    files = {
        f"{name}/__init__.py": source,
        f"{info}/METADATA": f"Metadata-Version: 2.1\nName: {name}\nVersion: 1.0\n",
        f"{info}/WHEEL": "Wheel-Version: 1.0\nRoot-Is-Purelib: true\nTag: py3-none-any\n",
    }
    with zipfile.ZipFile(wheel, "w") as archive:
        for path, text in files.items():
            archive.writestr(path, text)
        archive.writestr(
            f"{info}/RECORD", "".join(f"{path},,\n" for path in [*files, f"{info}/RECORD"])
        )
    return wheel


def test_a_deploy_builds_its_image_before_the_first_run_and_a_failed_build_says_why(platform):
    platform.start_workers()
    new = time.time_ns()  # images not built before, by an earlier session's data folder
    built = deploy(
        "prebuilt", "chalk_logger.info('ran')",
        image=Image.debian_slim().run_commands(f"echo preparing rates {new}"),
    )  # fmt: skip
    broken = deploy(
        "broken-image", "pass",
        image=Image.debian_slim().run_commands(f"echo no such index {new} >&2; exit 3"),
    )  # fmt: skip

    def build_of(function: Function) -> ImageBuild | None:
        image = function.current_version.image
        return ImageBuild.objects.filter(image=image, status__in=("ready", "failed")).first()

    ready = wait_for(lambda: build_of(built), 120, message="the build ahead")
    failed = wait_for(lambda: build_of(broken), 120, message="the failed build ahead")
    assert not Run.objects.exists()
    assert (ready.status, failed.status) == ("ready", "failed")
    assert "preparing rates" in ready.log and "no such index" in failed.log

    run = wait_for_run(trigger(built).id)
    assert run.status == "succeeded", run.status_reason
    assert log_texts(run) == ["ran"]
    assert ImageBuild.objects.get(id=ready.id).finished_at == ready.finished_at  # not again
    run = wait_for_run(trigger(broken).id, timeout=120)
    assert run.status == "failed"
    assert "image build failed" in run.status_reason, run.status_reason


def test_it_builds_the_image_once_with_its_commands_run_in_the_runs_virtualenv(platform, tmp_path):
    platform.start_workers()
    make_wheel(tmp_path, "ratesclient", "SOURCE = 'local rates'\n")
    # The build is sandboxed (no folder of the test's in it): the wheel comes from a package
    # index on this machine's own address, as one on the internet would.
    index = ThreadingHTTPServer(
        (host_address(), 0), functools.partial(SimpleHTTPRequestHandler, directory=tmp_path)
    )
    threading.Thread(target=index.serve_forever, daemon=True).start()
    host, port = index.server_address
    install = f"pip install --no-index --trusted-host {host} --find-links http://{host}:{port}/"
    # `pip` here must be the venv's: the package is importable in the run only if it is.
    image = Image.debian_slim().run_commands(f"{install} ratesclient")
    function = deploy(
        "with-image",
        "import ratesclient\nchalk_logger.info(ratesclient.SOURCE)",
        image=image,
    )

    first = wait_for_run(trigger(function).id, timeout=120)
    second = wait_for_run(trigger(function).id)

    assert (first.status, second.status) == ("succeeded", "succeeded"), first.status_reason
    assert log_texts(first) == log_texts(second) == ["local rates"]
    build = ImageBuild.objects.get()  # one build for both runs
    assert (build.status, build.executor) == ("ready", "local")
    assert f"$ {install} ratesclient" in build.log
    assert "Successfully installed ratesclient-1.0" in build.log
    index.shutdown()


def test_it_fails_a_run_whose_image_does_not_build_and_says_why(platform):
    platform.start_workers()
    image = Image.debian_slim().run_commands("exit 3")
    run = wait_for_run(trigger(deploy("broken-image", "pass", image=image)).id, timeout=120)

    assert run.status == "failed"
    assert (
        run.status_reason == "image build failed: image build step failed with exit code 3: exit 3"
    )


def test_it_caps_an_attempts_log_and_marks_the_truncation(platform, settings):
    settings.CHALK_MAX_LOG_BYTES = 1000  # read by the runner API the runner fetches from
    platform.start_workers()
    run = wait_for_run(
        trigger(deploy("chatty", "for i in range(500):\n    print(f'line {i:03}')")).id
    )

    texts = log_texts(run)
    assert run.status == "succeeded"
    assert texts[:2] == ["line 000", "line 001"]
    assert texts[-1] == (
        "log truncated: this attempt wrote more than 1000 bytes; later lines were dropped"
    )
    assert len(texts) < 500 and run.attempts.get().log_truncated


def test_it_refuses_a_gpu_the_local_worker_does_not_have(platform):
    platform.start_workers()
    run = wait_for_run(trigger(deploy("inference", "pass", gpu="nvidia-l4", retries=2)).id)

    assert run.status == "failed"
    assert run.status_reason == (
        "the local executor has no GPU (the function asks for nvidia-l4); run it on the "
        "kubernetes executor"
    )
    assert run.attempts.count() == 1  # no retry can bring a GPU
