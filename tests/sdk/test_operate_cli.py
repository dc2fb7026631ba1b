"""`chalkcompute pause | resume | runs | cancel | backfill | secrets set | secrets ls` against
the live server, as real processes: what they print, their --json documents, what they change on the
server, and the exit status a script can act on for each kind of failure."""

import datetime as dt
import json
import os
import pty
import subprocess
import sys
from pathlib import Path

import pytest
from django.utils import timezone

from common import crypto
from runs.models import Attempt, AttemptStatus, Backfill, Run, RunStatus, Trigger
from scheduling.models import Function, Secret
from tests.personas import make_token
from tests.server.support import ChalkServer

JOB = """
import chalkcompute


@chalkcompute.function(name="refresh-rates", schedule="0 * * * *")
def refresh_rates() -> None:
    pass
"""
SECRET_VALUE = "s3cr3t-exchange-key"


@pytest.fixture
def chalk(live_server, settings) -> ChalkServer:
    settings.CHALK_PUBLIC_URL = live_server.url
    _, token = make_token("cli-tests", role="deployer")
    return ChalkServer(live_server.url, token)


@pytest.fixture
def rates(chalk, tmp_path) -> Function:
    (tmp_path / "rates.py").write_text(JOB)
    deployed = chalk.chalkcompute("deploy", str(tmp_path / "rates.py"))
    assert deployed.returncode == 0, deployed.stderr
    return Function.objects.get(name="refresh-rates")


def cli(chalk: ChalkServer, *args: str, stdin: str = "", **env: str | None):
    return subprocess.run(
        [str(Path(sys.executable).with_name("chalkcompute")), *args],
        input=stdin, env=chalk.env(**env), capture_output=True, text=True, timeout=60,
    )  # fmt: skip


def started(chalk: ChalkServer) -> int:
    result = cli(chalk, "run", "refresh-rates", "--json")
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout)["id"]


# --- pause and resume ------------------------------------------------------------------------


def test_it_pauses_a_function_with_a_reason(chalk, rates):
    result = cli(chalk, "pause", "refresh-rates", "--reason", "feed migration")

    assert (result.returncode, result.stderr) == (0, "")
    assert result.stdout.splitlines() == [
        "Paused refresh-rates: feed migration",
        "  resume   chalkcompute resume refresh-rates",
    ]
    rates.refresh_from_db()
    assert (rates.paused, rates.paused_reason, rates.paused_by) == (
        True,
        "feed migration",
        "cli-tests",
    )
    assert rates.next_fire_at is None


def test_it_resumes_a_function(chalk, rates):
    cli(chalk, "pause", "refresh-rates")

    result = cli(chalk, "resume", "refresh-rates", "--json")

    assert (result.returncode, result.stderr) == (0, "")
    document = json.loads(result.stdout)
    assert (document["name"], document["paused"]) == ("refresh-rates", False)
    rates.refresh_from_db()
    assert rates.paused is False and rates.next_fire_at is not None


def test_it_exits_4_for_an_unknown_function(chalk, rates):
    for command in (["pause", "nope"], ["resume", "nope"], ["runs", "nope"], ["run", "nope"]):
        result = cli(chalk, *command)

        assert (result.returncode, result.stdout) == (4, ""), command
        assert result.stderr.startswith("chalkcompute: "), command
        assert "nope" in result.stderr, command


def test_it_exits_5_without_a_token(chalk, rates):
    result = cli(chalk, "pause", "refresh-rates", CHALK_COMPUTE_TOKEN=None)

    assert result.returncode == 5
    assert result.stderr.startswith("chalkcompute: CHALK_COMPUTE_TOKEN is not set")
    rates.refresh_from_db()
    assert rates.paused is False


def test_it_exits_5_when_the_token_may_not(chalk, rates):
    _, viewer = make_token("viewer-laptop", username="vera", role="viewer")

    result = cli(chalk, "pause", "refresh-rates", CHALK_COMPUTE_TOKEN=viewer)

    assert result.returncode == 5
    assert "operator" in result.stderr  # the role it needs
    rates.refresh_from_db()
    assert rates.paused is False


def test_it_exits_5_for_a_refused_token(chalk, rates):
    result = cli(chalk, "resume", "refresh-rates", CHALK_COMPUTE_TOKEN="chalk_not-a-token")

    assert result.returncode == 5
    assert "refused CHALK_COMPUTE_TOKEN" in result.stderr


def test_it_exits_2_for_a_reason_the_server_refuses(chalk, rates):
    result = cli(chalk, "pause", "refresh-rates", "--reason", "x" * 501)

    assert result.returncode == 2
    assert "500" in result.stderr
    rates.refresh_from_db()
    assert rates.paused is False


def test_it_exits_1_when_the_server_is_unreachable(chalk):
    result = cli(chalk, "runs", "refresh-rates", CHALK_COMPUTE_URL="http://127.0.0.1:9")

    assert result.returncode == 1
    assert result.stderr.startswith("chalkcompute: Cannot reach the Chalkweb server")


# --- runs and cancel -------------------------------------------------------------------------


def test_it_lists_a_functions_runs_newest_first(chalk, rates):
    first, second = started(chalk), started(chalk)
    Run.objects.filter(id=first).update(status=RunStatus.CANCELLED)

    result = cli(chalk, "runs", "refresh-rates")

    assert (result.returncode, result.stderr) == (0, "")
    lines = result.stdout.splitlines()
    assert lines[0].split() == ["RUN", "STATUS", "TRIGGER", "SLOT", "OR", "START", "DURATION"]
    assert [line.split()[:3] for line in lines[1:]] == [
        [str(second), "queued", "api"],
        [str(first), "cancelled", "api"],
    ]
    assert all(line.endswith(" -") for line in lines[1:])  # neither started


def test_it_lists_a_run_waiting_for_its_slot_as_scheduled(chalk, rates):
    slot = timezone.now() + dt.timedelta(seconds=30)
    run_id = started(chalk)
    # A worker took it ahead: its runner waits to call the function on the slot.
    Run.objects.filter(id=run_id).update(
        trigger=Trigger.SCHEDULE, scheduled_for=slot, status=RunStatus.RUNNING, started_at=slot
    )
    Attempt.objects.filter(run_id=run_id).update(status=AttemptStatus.RUNNING, started_at=slot)

    result = cli(chalk, "runs", "refresh-rates")

    assert (result.returncode, result.stderr) == (0, "")
    assert result.stdout.splitlines()[1].split()[:3] == [str(run_id), "scheduled", "schedule"]
    assert result.stdout.splitlines()[1].endswith(" -")
    cancelling = cli(chalk, "cancel", str(run_id))
    assert "(it is scheduled;" in cancelling.stdout, cancelling.stderr


def test_it_filters_runs_by_status_and_prints_json(chalk, rates):
    first, _ = started(chalk), started(chalk)
    Run.objects.filter(id=first).update(status=RunStatus.CANCELLED)

    result = cli(chalk, "runs", "refresh-rates", "--status", "cancelled", "--json")

    assert result.returncode == 0
    assert [(run["id"], run["status"]) for run in json.loads(result.stdout)] == [
        (first, "cancelled")
    ]


def test_it_says_when_a_function_has_no_runs(chalk, rates):
    result = cli(chalk, "runs", "refresh-rates")

    assert (result.returncode, result.stdout) == (0, "No runs of refresh-rates yet.\n")


@pytest.mark.parametrize(
    "arguments", [["--limit", "0"], ["--limit", "1001"], ["--limit", "x"], ["--status", "done"]]
)
def test_it_exits_2_for_a_bad_runs_option(chalk, arguments):
    result = cli(chalk, "runs", "refresh-rates", *arguments)

    assert (result.returncode, result.stdout) == (2, "")


def test_it_cancels_a_run(chalk, rates):
    run_id = started(chalk)

    result = cli(chalk, "cancel", str(run_id))

    assert (result.returncode, result.stderr) == (0, "")
    assert result.stdout.startswith("Cancel")
    assert f"run {run_id} of refresh-rates" in result.stdout
    assert Run.objects.get(id=run_id).cancel_requested_at is not None


def test_it_exits_6_when_the_run_already_ended(chalk, rates):
    run_id = started(chalk)
    Run.objects.filter(id=run_id).update(status=RunStatus.SUCCEEDED)

    result = cli(chalk, "cancel", str(run_id))

    assert result.returncode == 6
    assert "already ended (succeeded)" in result.stderr


def test_it_exits_4_for_an_unknown_run(chalk):
    result = cli(chalk, "cancel", "999999")

    assert result.returncode == 4
    assert "no run 999999" in result.stderr


@pytest.mark.parametrize("run_id", ["abc", "0", "-3", "1.5"])
def test_it_exits_2_for_a_bad_run_id(chalk, run_id):
    for command in ("cancel", "logs"):
        result = cli(chalk, command, run_id)

        assert result.returncode == 2, command
        assert "is not a run id" in result.stderr, command


# --- backfill --------------------------------------------------------------------------------


def six_hours_ago() -> tuple[dt.datetime, dt.datetime]:
    """Six hourly slots of yesterday: (first, last)."""
    first = (timezone.now() - dt.timedelta(days=1)).replace(minute=0, second=0, microsecond=0)
    return first, first + dt.timedelta(hours=5)


def iso(moment: dt.datetime) -> str:
    return moment.strftime("%Y-%m-%dT%H:%MZ")


def backfill(chalk: ChalkServer, *options: str, stdin: str = "", **env):
    first, last = six_hours_ago()
    return cli(
        chalk, "backfill", "refresh-rates", "--from", iso(first), "--to", iso(last), *options,
        stdin=stdin, **env,
    )  # fmt: skip


def test_it_backfills_a_range_and_says_how_to_follow_it(chalk, rates):
    result = backfill(chalk, "--parallel", "2")

    assert (result.returncode, result.stderr) == (0, "")
    started = Backfill.objects.get()
    first, last = six_hours_ago()
    assert result.stdout.splitlines() == [
        f"Started backfill {started.id} of refresh-rates (version 1): 6 slots from "
        f"{first:%Y-%m-%d %H:%M} UTC to {last:%Y-%m-%d %H:%M} UTC, 2 runs at a time",
        "  runs     chalkcompute runs refresh-rates",
        f"  console  {chalk.url}/functions/refresh-rates#backfills (progress, Cancel)",
    ]
    assert (started.start, started.end, started.max_parallel, started.created_by) == (
        first, last, 2, "cli-tests",
    )  # fmt: skip
    assert list(started.runs.values_list("scheduled_for", flat=True).order_by("id")) == [
        first, first + dt.timedelta(hours=1),
    ]  # fmt: skip


def test_it_prints_the_backfill_document_with_json(chalk, rates):
    result = backfill(chalk, "--rerun", "--json")

    assert result.returncode == 0, result.stderr
    document = json.loads(result.stdout)
    assert (document["id"], document["slots"], document["rerun"]) == (
        Backfill.objects.get().id, 6, True,
    )  # fmt: skip


def test_it_needs_yes_for_a_large_backfill_when_it_cannot_ask(chalk, rates, settings):
    settings.CHALK_BACKFILL_CONFIRM_SLOTS = 5

    refused = backfill(chalk)

    assert (refused.returncode, refused.stdout) == (2, "")
    assert refused.stderr.startswith("chalkcompute: this backfill would run 6 slots of ")
    assert refused.stderr.endswith('send it again with "confirm": true (or --yes)\n')
    assert not Backfill.objects.exists()
    assert backfill(chalk, "--yes").returncode == 0
    assert Backfill.objects.get().slots == 6


@pytest.mark.parametrize(("answer", "status", "made"), [("y\n", 0, 1), ("n\n", 1, 0)])
def test_it_asks_at_a_terminal_before_a_large_backfill(
    chalk, rates, settings, answer, status, made
):
    settings.CHALK_BACKFILL_CONFIRM_SLOTS = 5
    terminal, keyboard = pty.openpty()
    os.write(terminal, answer.encode())
    first, last = six_hours_ago()
    try:
        result = subprocess.run(
            [str(Path(sys.executable).with_name("chalkcompute")), "backfill", "refresh-rates",
             "--from", iso(first), "--to", iso(last)],
            stdin=keyboard, env=chalk.env(), capture_output=True, text=True, timeout=60,
        )  # fmt: skip
    finally:
        os.close(terminal)
        os.close(keyboard)

    assert result.returncode == status, result.stderr
    assert "this backfill would run 6 slots" in result.stderr
    assert "Start the backfill? [y/N] " in result.stderr
    assert Backfill.objects.count() == made
    if not made:
        assert result.stderr.endswith("chalkcompute: backfill not started\n")


def test_it_exits_2_for_a_range_the_server_refuses(chalk, rates):
    result = cli(
        chalk, "backfill", "refresh-rates", "--from", "2026-12-01T00:00", "--to",
        "2026-12-01T05:00Z",
    )  # fmt: skip

    assert (result.returncode, result.stdout) == (2, "")
    assert result.stderr == (
        "chalkcompute: start: '2026-12-01T00:00' has no time zone; give an offset or Z, e.g. "
        "2026-12-01T00:00:00Z\n"
    )
    assert not Backfill.objects.exists()


def test_it_exits_6_when_every_slot_already_succeeded(chalk, rates):
    backfill(chalk, "--parallel", "10")
    Run.objects.update(status=RunStatus.SUCCEEDED, finished_at=timezone.now())  # as a run ends

    result = backfill(chalk)

    assert result.returncode == 6
    assert "already succeeded; to run them again" in result.stderr
    assert backfill(chalk, "--rerun", "--yes").returncode == 0


def test_it_exits_4_when_backfilling_an_unknown_function(chalk, db):
    result = cli(chalk, "backfill", "nope", "--from", "2026-12-01T00:00Z", "--to", "now")

    assert result.returncode == 4
    assert "nope" in result.stderr


# --- secrets ---------------------------------------------------------------------------------


def test_it_sets_a_secret_from_stdin(chalk):
    result = cli(chalk, "secrets", "set", "EXCHANGE_API_KEY", stdin=SECRET_VALUE + "\n")

    assert (result.returncode, result.stdout, result.stderr) == (
        0,
        "Created secret EXCHANGE_API_KEY\n",
        "",
    )
    assert crypto.decrypt(Secret.objects.get(name="EXCHANGE_API_KEY").ciphertext) == SECRET_VALUE


def test_it_replaces_a_secret_from_an_environment_variable(chalk):
    cli(chalk, "secrets", "set", "EXCHANGE_API_KEY", stdin="old")

    result = cli(
        chalk, "secrets", "set", "EXCHANGE_API_KEY", "--from-env", "RATES_KEY",
        RATES_KEY=SECRET_VALUE,
    )  # fmt: skip

    assert (result.returncode, result.stdout) == (0, "Replaced secret EXCHANGE_API_KEY\n")
    assert crypto.decrypt(Secret.objects.get(name="EXCHANGE_API_KEY").ciphertext) == SECRET_VALUE
    assert SECRET_VALUE not in result.stdout + result.stderr


def test_it_takes_no_secret_value_as_an_argument(chalk, db):
    result = cli(chalk, "secrets", "set", "EXCHANGE_API_KEY", SECRET_VALUE)

    assert result.returncode == 2
    assert not Secret.objects.exists()


@pytest.mark.parametrize(
    "arguments, stdin, message",
    [
        ([], "", "the value for EXCHANGE_API_KEY is empty"),
        ([], "\n", "the value for EXCHANGE_API_KEY is empty"),
        (["--from-env", "UNSET_VARIABLE"], "", "UNSET_VARIABLE is not set"),
    ],
)
def test_it_exits_2_without_a_value(chalk, db, arguments, stdin, message):
    result = cli(chalk, "secrets", "set", "EXCHANGE_API_KEY", *arguments, stdin=stdin)

    assert result.returncode == 2
    assert message in result.stderr
    assert not Secret.objects.exists()


def test_it_exits_2_for_a_secret_name_the_server_refuses(chalk, db):
    result = cli(chalk, "secrets", "set", "not a name", stdin=SECRET_VALUE)

    assert result.returncode == 2
    assert result.stderr.startswith("chalkcompute: ")
    assert not Secret.objects.exists()


def test_it_lists_secret_names_never_values(chalk):
    cli(chalk, "secrets", "set", "EXCHANGE_API_KEY", stdin=SECRET_VALUE)
    cli(chalk, "secrets", "set", "WAREHOUSE_DSN", stdin="postgres://x")

    table = cli(chalk, "secrets", "ls")
    document = cli(chalk, "secrets", "ls", "--json")

    assert table.returncode == 0
    assert [line.split()[0] for line in table.stdout.splitlines()] == [
        "NAME",
        "EXCHANGE_API_KEY",
        "WAREHOUSE_DSN",
    ]
    names = [secret["name"] for secret in json.loads(document.stdout)]
    assert names == ["EXCHANGE_API_KEY", "WAREHOUSE_DSN"]
    assert SECRET_VALUE not in table.stdout + document.stdout


def test_it_says_when_there_are_no_secrets(chalk, db):
    result = cli(chalk, "secrets", "ls")

    assert result.returncode == 0
    assert result.stdout.startswith("No secrets.")


def test_ls_and_deploy_print_json_too(chalk, rates, tmp_path):
    listed = cli(chalk, "ls", "--json")
    (tmp_path / "rates.py").write_text(JOB)
    deployed = cli(chalk, "deploy", str(tmp_path / "rates.py"), "--json")

    assert [function["name"] for function in json.loads(listed.stdout)] == ["refresh-rates"]
    assert [(d["name"], d["deploy"]) for d in json.loads(deployed.stdout)] == [
        ("refresh-rates", "unchanged")
    ]


def test_a_reader_that_stops_early_gets_no_traceback(chalk, rates):
    """`chalkcompute ls --json | head -c 10`: the reader has gone before the listing is
    written (its end of the pipe is closed first, so the write always finds it closed)."""
    read_end, write_end = os.pipe()
    os.close(read_end)
    writer = subprocess.run(
        [str(Path(sys.executable).with_name("chalkcompute")), "ls", "--json"],
        env=chalk.env(), stdout=write_end, stderr=subprocess.PIPE, timeout=60,
    )  # fmt: skip
    os.close(write_end)

    assert writer.returncode == 0
    assert writer.stderr == b""
