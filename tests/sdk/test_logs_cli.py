"""`chalkcompute logs RUN_ID [--follow]` against the live server: how a run ended, why, and the
exit status a script can act on.

The command runs as a real process. The run's attempt goes through the same services a worker
and its runner call (claim, begin, log lines, finish), from the test, so that each outcome is
reached on cue without starting celery.
"""

import subprocess
import sys
import time
from pathlib import Path

import pytest
from django.utils import timezone

from chalkcompute.cli import printable
from runs.logs import log_append
from runs.models import Attempt
from runs.services import attempt_begin, attempt_claim, attempt_finish, run_cancel
from tests.personas import acting, make_token
from tests.server.support import ChalkServer

JOB = """
import chalkcompute


@chalkcompute.function(name="refresh-rates", retries={retries})
def refresh_rates() -> None:
    raise ValueError("rates feed is down")
"""
TRACEBACK = (
    "Traceback (most recent call last):\n"
    '  File "/app/rates.py", line 6, in refresh_rates\n'
    '    raise ValueError("rates feed is down")\n'
    "ValueError: rates feed is down\n"
)
FAILED = {
    "error_type": "ValueError",
    "error_message": "rates feed is down",
    "traceback": TRACEBACK,
    "exit_code": 1,
}


@pytest.fixture
def chalk(live_server, settings) -> ChalkServer:
    settings.CHALK_PUBLIC_URL = live_server.url
    _, token = make_token("logs-tests")
    return ChalkServer(live_server.url, token)


def started_run(chalk: ChalkServer, tmp_path: Path, retries: int = 0) -> int:
    """Deploys the job and starts a run of it with the CLI; returns the run's id."""
    (tmp_path / "rates.py").write_text(JOB.format(retries=retries))
    deployed = chalk.chalkcompute("deploy", str(tmp_path / "rates.py"))
    assert deployed.returncode == 0, deployed.stderr
    started = chalk.chalkcompute("run", "refresh-rates")
    assert started.returncode == 0, started.stderr
    return int(started.stdout.split()[2])


def running_attempt(run_id: int, number: int = 1) -> Attempt:
    """What a worker and its runner do before the function's first line runs."""
    attempt = Attempt.objects.get(run_id=run_id, number=number)
    claimed = attempt_claim(
        attempt_id=attempt.id, executor="local", executor_ref="test", now=timezone.now()
    )
    assert claimed is not None
    attempt, _ = claimed
    assert attempt_begin(attempt=attempt, now=timezone.now())
    return attempt


def say(attempt: Attempt, first_seq: int, text: str) -> None:
    line = {"ts": time.time(), "stream": "stdout", "level": "INFO", "text": text}
    log_append(attempt=attempt, first_seq=first_seq, lines=[line], now=timezone.now())


def finish(attempt: Attempt, status: str, **outcome) -> None:
    assert attempt_finish(attempt=attempt, status=status, now=timezone.now(), **outcome)


class Follower:
    """`chalkcompute logs RUN_ID --follow` in the background, its output in files."""

    def __init__(self, chalk: ChalkServer, tmp_path: Path, run_id: int) -> None:
        self.stdout, self.stderr = tmp_path / "follow.out", tmp_path / "follow.err"
        self.process = subprocess.Popen(
            [str(Path(sys.executable).with_name("chalkcompute")), "logs", str(run_id), "--follow"],
            env=chalk.env(),
            stdout=self.stdout.open("w"),
            stderr=self.stderr.open("w"),
            text=True,
        )

    def wait_for_output(self, text: str, timeout: float = 30) -> None:
        deadline = time.monotonic() + timeout
        while text not in self.stdout.read_text():
            assert self.process.poll() is None, self.stderr.read_text()
            assert time.monotonic() < deadline, f"no {text!r} in {self.stdout.read_text()!r}"
            time.sleep(0.1)

    def result(self) -> tuple[int, list[str], str]:
        """(exit status, stdout lines without their timestamps, stderr)."""
        returncode = self.process.wait(timeout=30)
        lines = [line[9:] for line in self.stdout.read_text().splitlines()]
        return returncode, lines, self.stderr.read_text()


def test_it_says_why_a_followed_run_failed_and_exits_non_zero(chalk, tmp_path):
    run_id = started_run(chalk, tmp_path)
    follower = Follower(chalk, tmp_path, run_id)
    attempt = running_attempt(run_id)
    say(attempt, 0, "fetching rates")
    follower.wait_for_output("fetching rates")  # following, while the run is still going

    finish(attempt, "failed", **FAILED)

    returncode, lines, stderr = follower.result()
    assert returncode == 3
    assert lines == ["INFO fetching rates"]
    assert stderr == f"{TRACEBACK}run {run_id} failed: ValueError: rates feed is down\n"


def test_it_exits_zero_when_a_followed_run_succeeds(chalk, tmp_path):
    run_id = started_run(chalk, tmp_path)
    follower = Follower(chalk, tmp_path, run_id)
    attempt = running_attempt(run_id)
    say(attempt, 0, "fetching rates")
    follower.wait_for_output("fetching rates")

    finish(attempt, "succeeded", exit_code=0)

    assert follower.result() == (0, ["INFO fetching rates"], f"run {run_id} succeeded\n")


def test_it_says_how_many_attempts_a_retried_run_failed_after(chalk, tmp_path):
    run_id = started_run(chalk, tmp_path, retries=1)
    finish(running_attempt(run_id), "failed", **FAILED)
    finish(running_attempt(run_id, number=2), "timed_out", reason="timed out after 600 s")

    result = chalk.chalkcompute("logs", str(run_id))

    assert (result.returncode, result.stdout) == (3, "")
    assert result.stderr == f"run {run_id} timed_out after 2 attempts: timed out after 600 s\n"


@pytest.mark.parametrize(
    ("status", "outcome", "reason"),
    [
        ("failed", FAILED, "ValueError: rates feed is down"),
        ("timed_out", {"reason": "timed out after 600 s"}, "timed out after 600 s"),
        ("lost", {"reason": "no heartbeat for 30 s"}, "no heartbeat for 30 s"),
        (
            "failed",
            {"exit_code": -9, "reason": "the function's process was killed by signal SIGKILL"},
            "the function's process was killed by signal SIGKILL",
        ),
    ],
)
def test_it_says_why_an_ended_run_did_not_succeed_without_following(
    chalk, tmp_path, status, outcome, reason
):
    run_id = started_run(chalk, tmp_path)
    attempt = running_attempt(run_id)
    say(attempt, 0, "fetching rates")
    finish(attempt, status, **outcome)

    result = chalk.chalkcompute("logs", str(run_id))

    assert result.returncode == 3
    assert [line[9:] for line in result.stdout.splitlines()] == ["INFO fetching rates"]
    assert result.stderr.splitlines()[-1] == f"run {run_id} {status}: {reason}"


def test_it_says_who_cancelled_a_run(chalk, tmp_path):
    run_id = started_run(chalk, tmp_path)
    assert run_cancel(
        run=Attempt.objects.get(run_id=run_id).run, actor=acting("alice"), now=timezone.now()
    )

    result = chalk.chalkcompute("logs", str(run_id), "--follow")

    assert (result.returncode, result.stdout) == (3, "")
    assert result.stderr == f"run {run_id} cancelled: cancelled by alice\n"


def test_it_exits_zero_for_a_run_still_going_without_following(chalk, tmp_path):
    run_id = started_run(chalk, tmp_path)
    say(running_attempt(run_id), 0, "fetching rates")

    result = chalk.chalkcompute("logs", str(run_id))

    assert (result.returncode, result.stderr) == (0, "")
    assert [line[9:] for line in result.stdout.splitlines()] == ["INFO fetching rates"]


def test_it_lists_its_exit_statuses_in_its_help(chalk):
    for args in (["--help"], ["logs", "--help"]):
        result = chalk.chalkcompute(*args)

        assert result.returncode == 0
        assert "exit status:\n  0  success" in result.stdout
        assert "\n  3  `logs`: the run ended without succeeding" in result.stdout


@pytest.mark.parametrize(
    ("text", "shown"),
    [
        ("\x1b[31mred\x1b[0m text", "red text"),  # CSI: colours
        ("\x1b[2J\x1b[Hcleared", "cleared"),  # CSI: clear the screen, move the cursor
        ("\x1b]0;pwned\x07title", "title"),  # OSC: the window title, ended by BEL
        ("\x1b]8;;https://evil.example\x1b\\link\x1b]8;;\x1b\\", "link"),  # OSC 8: a hyperlink
        ("\x1b]52;c;cm0gLXJmIH4=\x07clipboard", "clipboard"),  # OSC 52: writes the clipboard
        ("\x1bP1$r\x1b\\dcs", "dcs"),  # DCS string, ended by ST
        ("\x1b_apc\x1b\\\x1b^pm\x1b\\\x1bXsos\x1b\\ok", "ok"),  # APC, PM, SOS strings
        ("\x1b]0;never ended", ""),  # an unended string hides the rest: nothing acts on it
        ("\x1b(0\x1b7\x1b8\x1bcreset", "reset"),  # other ESC sequences
        ("\x9b31m\x9d0;t\x9c8-bit", "8-bit"),  # the 8-bit C1 forms of CSI, OSC and ST
        ("over\rwrite\x08\x08me\x00\x7f\x85", "overwriteme"),  # C0 controls, DEL, C1 (NEL)
        ("tab\tand\nnewline stay", "tab\tand\nnewline stay"),
        ("naïve — ok €", "naïve — ok €"),  # printable non-ASCII stays
        ("trailing escape\x1b", "trailing escape"),
    ],
    ids=repr,
)
def test_it_strips_terminal_control_sequences_from_what_it_prints(text, shown):
    assert printable(text) == shown


def test_logs_shows_a_line_without_its_terminal_control_sequences(chalk, tmp_path):
    run_id = started_run(chalk, tmp_path)
    attempt = running_attempt(run_id)
    say(attempt, 0, "\x1b]0;owned\x07\x1b[2J\x1b[31mfetching\x1b[0m rates\r\x1b[Kdone")
    finish(
        attempt,
        "failed",
        **{**FAILED, "traceback": "Traceback\x1b[1A\x1b[2K\n", "error_message": "bad\x1b]8;;x\x07"},
    )

    result = chalk.chalkcompute("logs", str(run_id))

    assert result.returncode == 3
    assert [line[9:] for line in result.stdout.splitlines()] == ["INFO fetching ratesdone"]
    assert result.stderr == f"Traceback\nrun {run_id} failed: ValueError: bad\n"
    assert "\x1b" not in result.stdout + result.stderr
