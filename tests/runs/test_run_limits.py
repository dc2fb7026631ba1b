"""Every local run is held to its limits, whatever it does (runs/limits.py, the runner's
RunProcesses): memory with or without `memory=`, with children that leave its session, its
number of processes, and the disk its HOME and /tmp can fill. Real workers, real sandboxes."""

import os

import pytest
from django.utils import timezone

from runs.models import Attempt, LogLine
from runs.services import run_trigger
from tests.personas import acting
from tests.runs.support import deploy, wait_for_run
from tests.runs.test_sandbox import needs_bwrap

pytestmark = [needs_bwrap, pytest.mark.slow]


def run(function, timeout=120):
    started = run_trigger(function=function, trigger="manual", actor=acting("test"),
                          now=timezone.now())  # fmt: skip
    return wait_for_run(started.id, timeout=timeout)


def said(run) -> str:
    lines = LogLine.objects.filter(attempt__run=run).order_by("id").values_list("text", flat=True)
    return "\n".join(lines)


def test_a_run_without_memory_is_held_to_the_default_request(platform, settings):
    platform.start_workers(concurrency=2)
    hog = deploy("default-hog", "block = bytearray(300 * 2**20)\nimport time; time.sleep(30)")

    finished = run(hog)

    assert finished.status == "failed", said(finished)
    reason = Attempt.objects.get(run=finished).reason
    assert "out of memory" in reason and "above the default memory limit 64.0 MiB" in reason


def test_children_that_leave_the_session_still_count_and_still_stop(platform):
    platform.start_workers(concurrency=2)
    # Each child calls setsid(): the function's session no longer holds it.
    escaper = deploy(
        "setsid-escaper",
        """
        import subprocess, sys, time
        code = "import os, time; os.setsid(); b = bytearray(100 * 2**20); time.sleep(60)"
        for _ in range(4):
            subprocess.Popen([sys.executable, "-c", code])
        time.sleep(60)
        """,
        memory="128Mi",
    )

    finished = run(escaper)

    assert finished.status == "failed", said(finished)
    assert "out of memory" in Attempt.objects.get(run=finished).reason


def test_a_run_is_held_to_its_number_of_processes(platform, settings):
    settings.CHALK_RUN_MAX_PROCESSES = 20  # the runner API, in this process, tells the runner
    platform.start_workers(concurrency=2)
    forker = deploy(
        "forker",
        """
        import subprocess, time
        for _ in range(60):
            subprocess.Popen(["sleep", "120"], start_new_session=True)
        time.sleep(60)
        """,
        memory="1Gi",
    )

    finished = run(forker)

    assert finished.status == "failed", said(finished)
    reason = Attempt.objects.get(run=finished).reason
    assert "too many processes" in reason and "limit of 20" in reason, reason


def test_a_run_filling_its_disk_fills_only_its_own_memory_backed_folders(platform, settings):
    platform.start_workers(concurrency=2)
    filler = deploy(
        "disk-filler",
        """
        import os
        written = 0
        try:
            with open("/tmp/fill", "wb") as out:
                while True:
                    out.write(b"x" * 2**20)
                    out.flush()
                    written += 1
        except OSError as exc:
            print("stopped after", written, "MiB:", exc.strerror)
        import time; time.sleep(30)  # what it wrote stays: the runner counts it as memory
        """,
        memory="96Mi",
    )
    free_before = _free(settings.DATA_DIR)

    finished = run(filler)

    assert finished.status == "failed", said(finished)
    reason = Attempt.objects.get(run=finished).reason
    assert "files in HOME and /tmp, which are memory" in reason, reason
    # Nothing of it went to the data folder's disk (give or take the platform's own writes).
    assert _free(settings.DATA_DIR) > free_before - 48 * 2**20


def _free(path) -> int:
    found = os.statvfs(path)
    return found.f_bavail * found.f_frsize


def test_a_run_without_timeout_stops_at_the_default_timeout(platform, settings):
    settings.CHALK_RUN_DEFAULT_TIMEOUT_SECONDS = 3  # the runner API, in this process, says so
    platform.start_workers(concurrency=2)
    sleeper = deploy("forever", "import time\ntime.sleep(3600)")

    finished = run(sleeper)

    assert finished.status == "timed_out", said(finished)
    assert Attempt.objects.get(run=finished).reason == (
        "timed out after 3 seconds (the default: set timeout= on the function for longer)"
    )
