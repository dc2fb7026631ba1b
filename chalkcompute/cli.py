"""The `chalkcompute` command: `deploy FILE`, `ls`, `run NAME`, `logs RUN_ID [--follow]`,
`pause NAME [--reason]`, `resume NAME`, `runs NAME`, `cancel RUN_ID`, `backfill NAME --from
ISO --to ISO`, `secrets set NAME` and `secrets ls`; `--json` prints the server's documents
for machines, and the exit status says what happened (EXIT_STATUSES). Everything goes through
the REST API, so the server's rights, audit and rules apply exactly as they do to the
console."""

import argparse
import getpass
import json
import os
import re
import runpy
import sys
import time
import urllib.parse
from collections.abc import Callable, Sequence
from datetime import datetime
from pathlib import Path
from typing import Any

from chalkcompute import words
from chalkcompute.client import (
    ChalkClientError,
    Client,
    NotAuthenticatedError,
    RequestRejectedError,
)
from chalkcompute.decorator import ChalkFunction, InvalidFunctionError
from chalkcompute.deploy import DeployError, deploy_function, format_summary, when

# The name the deployed file runs under: anything but "__main__", so that the decorator's
# deploy-on-definition stays quiet and this command deploys what it collects instead.
DEPLOY_RUN_NAME = "__chalkcompute_deploy__"
FOLLOW_INTERVAL_SECONDS = 1.0
RUNS_SHOWN = 20  # `runs NAME` without --limit
MAX_RUNS_SHOWN = 1000  # the API's largest page
RUN_STATUSES = (
    "queued", "starting", "running", "retrying", "succeeded", "failed", "timed_out",
    "cancelled", "lost", "skipped",
)  # fmt: skip

# Exit statuses, also listed in --help.
EXIT_OK = 0
EXIT_ERROR = 1  # the command could not do its job for another reason (server unreachable, ...)
EXIT_USAGE = 2  # argparse's own, and an argument the server refused as invalid (HTTP 400)
EXIT_RUN_UNSUCCESSFUL = 3  # `logs`: the run ended but did not succeed
EXIT_NOT_FOUND = 4  # no such function or run
EXIT_NOT_ALLOWED = 5  # no token, a token refused, or a right the token or its owner lacks
EXIT_CONFLICT = 6  # `cancel`: the run already ended; `backfill`: every slot already succeeded
EXIT_STATUSES = f"""exit status:
  {EXIT_OK}  success; for `logs`, the run succeeded (or, without --follow, is still going)
  {EXIT_ERROR}  the command failed for another reason: the server is unreachable or failing;
     for `deploy`, any failure (a file that declares no function, a refused upload, ...)
  {EXIT_USAGE}  the command line is not valid, or the server refused an argument in it
  {EXIT_RUN_UNSUCCESSFUL}  `logs`: the run ended without succeeding (failed, timed_out, cancelled,
     lost or skipped); stderr says why
  {EXIT_NOT_FOUND}  no such function or run
  {EXIT_NOT_ALLOWED}  no token (CHALK_COMPUTE_TOKEN), a token the server refused, or a right
     the token or its owner does not have
  {EXIT_CONFLICT}  `cancel`: the run already ended; `backfill`: every slot of the range already
     succeeded (--rerun runs them again)"""


class CommandError(Exception):
    """The command cannot do its job: str() is the message, `status` the exit status."""

    def __init__(self, message: str, status: int = EXIT_ERROR) -> None:
        super().__init__(message)
        self.status = status


_STATUS_OF_REFUSAL = {
    400: EXIT_USAGE,
    403: EXIT_NOT_ALLOWED,
    404: EXIT_NOT_FOUND,
    409: EXIT_CONFLICT,
}


def call(operation: Callable[[], Any]) -> Any:
    """The API's answer to `operation`; a failure becomes a CommandError whose status says
    what kind of failure it was."""
    try:
        return operation()
    except NotAuthenticatedError as exc:
        raise CommandError(str(exc), EXIT_NOT_ALLOWED) from None
    except RequestRejectedError as exc:
        raise CommandError(str(exc), _STATUS_OF_REFUSAL.get(exc.status, EXIT_ERROR)) from None
    except ChalkClientError as exc:
        raise CommandError(str(exc)) from None


def print_json(document: Any) -> None:
    print(json.dumps(document, indent=2, ensure_ascii=False))


def _segment(name: str) -> str:
    return urllib.parse.quote(name, safe="")


def _table(rows: list[tuple[str, ...]]) -> None:
    """Prints rows in columns padded to their widest cell (the last column unpadded)."""
    widths = [max(len(row[column]) for row in rows) for column in range(len(rows[0]) - 1)]
    for row in rows:
        print("  ".join([*(row[i].ljust(width) for i, width in enumerate(widths)), row[-1]]))


# --- deploy, ls, run ---------------------------------------------------------------------------


def collect(path: Path) -> list[ChalkFunction]:
    """Runs the file (as `python FILE` would, but not as __main__) and returns the functions it
    declares at module level, in the order they were defined."""
    sys.path.insert(0, str(path.parent))
    try:
        namespace = runpy.run_path(str(path), run_name=DEPLOY_RUN_NAME)
    finally:
        sys.path.remove(str(path.parent))
    found: dict[int, ChalkFunction] = {}
    for value in namespace.values():
        if isinstance(value, ChalkFunction) and value.fn.__module__ == DEPLOY_RUN_NAME:
            found.setdefault(id(value), value)
    return list(found.values())


def deploy(file: str, as_json: bool) -> int:
    path = Path(file).resolve()
    if not path.is_file():
        raise CommandError(f"{file} is not a file; give the path of a Python script")
    try:
        functions = collect(path)
    except InvalidFunctionError as exc:
        raise CommandError(str(exc)) from None
    if not functions:
        raise CommandError(
            f"{file} declares no function with @chalkcompute.function at its top level"
        )
    client = Client.from_env()
    documents = []
    for declared in functions:
        try:
            document = deploy_function(declared, source_path=path, client=client)
        except DeployError as exc:
            raise CommandError(str(exc)) from None
        documents.append(document)
        if not as_json:
            print(format_summary(document))
    if as_json:
        print_json(documents)
    return EXIT_OK


def ls(as_json: bool) -> int:
    functions = call(Client.from_env().list_functions)
    if as_json:
        print_json(functions)
        return EXIT_OK
    if not functions:
        print("No functions deployed. Deploy one with `python my_job.py`.")
        return EXIT_OK
    rows = [("NAME", "SCHEDULE", "NEXT RUN", "PAUSED")]
    for function in functions:
        schedule, zone = function["schedule_description"], function.get("timezone")
        if function["cron"]:
            schedule += f" ({function['cron']}{f', {zone}' if zone else ''})"
        paused = "yes" if function["paused"] else "no"
        rows.append((function["name"], schedule, when(function["next_fire_at"], zone), paused))
    _table(rows)
    return EXIT_OK


def run(name: str, as_json: bool) -> int:
    run = call(lambda: Client.from_env().trigger(name))
    if as_json:
        print_json(run)
        return EXIT_OK
    print(f"Started run {run['id']} of {run['function']} (version {run['version']})")
    print(f"  logs     chalkcompute logs {run['id']} --follow")
    return EXIT_OK


# --- pause, resume, runs, cancel ---------------------------------------------------------------


def pause(name: str, reason: str, as_json: bool) -> int:
    client = Client.from_env()
    function = call(
        lambda: client.request(
            "POST", f"/api/v1/functions/{_segment(name)}/pause", {"reason": reason}
        )[1]
    )
    if as_json:
        print_json(function)
        return EXIT_OK
    why = f": {function['paused_reason']}" if function.get("paused_reason") else ""
    print(f"Paused {function['name']}{why}")
    print(f"  resume   chalkcompute resume {function['name']}")
    return EXIT_OK


def resume(name: str, as_json: bool) -> int:
    client = Client.from_env()
    function = call(lambda: client.request("POST", f"/api/v1/functions/{_segment(name)}/resume")[1])
    if as_json:
        print_json(function)
        return EXIT_OK
    print(f"Resumed {function['name']}")
    print(f"  next run {when(function['next_fire_at'], function.get('timezone'))}")
    return EXIT_OK


def _status(run: dict) -> str:
    """The run's status as the console shows it ("scheduled" while it waits for its slot); a
    server without `shown_status` has only `status`."""
    return run.get("shown_status") or run["status"]


def _duration(run: dict) -> str:
    if not run["started_at"] or _status(run) == "scheduled":
        return "-"
    started = datetime.fromisoformat(run["started_at"].replace("Z", "+00:00"))
    if not run["finished_at"]:
        return "running"
    finished = datetime.fromisoformat(run["finished_at"].replace("Z", "+00:00"))
    return words.duration((finished - started).total_seconds())


def runs(name: str, status: str | None, limit: int, as_json: bool) -> int:
    query = {"function": name, "limit": limit, **({"status": status} if status else {})}
    client = Client.from_env()
    page = call(lambda: client.request("GET", f"/api/v1/runs?{urllib.parse.urlencode(query)}")[1])
    if as_json:
        print_json(page["results"])
        return EXIT_OK
    if not page["results"]:
        print(f"No runs of {name}{f' with status {status}' if status else ''} yet.")
        return EXIT_OK
    rows = [("RUN", "STATUS", "TRIGGER", "SLOT OR START", "DURATION")]
    for run in page["results"]:
        moment = run["scheduled_for"] or run["created_at"]
        rows.append((str(run["id"]), _status(run), run["trigger"], when(moment), _duration(run)))
    _table(rows)
    return EXIT_OK


def cancel(run_id: int, as_json: bool) -> int:
    client = Client.from_env()
    run = call(lambda: client.request("POST", f"/api/v1/runs/{run_id}/cancel")[1])
    if as_json:
        print_json(run)
        return EXIT_OK
    if run["status"] == "cancelled":
        print(f"Cancelled run {run['id']} of {run['function']}")
    else:
        print(
            f"Cancelling run {run['id']} of {run['function']} (it is {_status(run)}; "
            "the executor stops it now)"
        )
    return EXIT_OK


# --- backfill ----------------------------------------------------------------------------------


def backfill(
    name: str, start: str, end: str, rerun: bool, parallel: int, yes: bool, as_json: bool
) -> int:
    """Starts a backfill. The server says when its size needs a confirmation: at a terminal
    the question is asked here, elsewhere --yes gives it."""
    client = Client.from_env()
    path = f"/api/v1/functions/{_segment(name)}/backfill"
    body = {"start": start, "end": end, "rerun": rerun, "max_parallel": parallel, "confirm": yes}

    def start_backfill() -> dict:
        try:
            return client.request("POST", path, body)[1]
        except RequestRejectedError as exc:
            if exc.code != "confirm_required" or not sys.stdin.isatty():
                raise
            question = f"{printable(exc.detail)}\nStart the backfill? [y/N] "
            print(question, end="", file=sys.stderr, flush=True)
            if sys.stdin.readline().strip().lower() not in ("y", "yes"):
                raise CommandError("backfill not started") from None
            return client.request("POST", path, {**body, "confirm": True})[1]

    started = call(start_backfill)
    if as_json:
        print_json(started)
        return EXIT_OK
    at_once = f"{started['max_parallel']} run{'s' if started['max_parallel'] > 1 else ''}"
    print(
        f"Started backfill {started['id']} of {started['function']} (version "
        f"{started['version']}): {started['slots']} slots from {when(started['start'])} to "
        f"{when(started['end'])}, {at_once} at a time"
    )
    if started["skipped_slots"]:
        print(f"  skipped  {started['skipped_slots']} slots that already succeeded")
    print(f"  runs     chalkcompute runs {started['function']}")
    print(f"  console  {started['console_url']} (progress, Cancel)")
    return EXIT_OK


# --- secrets -----------------------------------------------------------------------------------


def _secret_value(name: str, from_env: str | None) -> str:
    """The value from the environment variable `from_env`, else stdin: typed without echo at a
    terminal, or piped (one trailing newline dropped, as `echo` adds it). Never an argument:
    arguments show in `ps` and in shell history."""
    if from_env:
        if from_env not in os.environ:
            raise CommandError(
                f"the environment variable {from_env} is not set; export it, or pipe the "
                f'value in: `printf %s "$VALUE" | chalkcompute secrets set {name}`',
                EXIT_USAGE,
            )
        value = os.environ[from_env]
    elif sys.stdin.isatty():
        value = getpass.getpass(f"Value for {name} (not shown): ")
    else:
        value = sys.stdin.read().removesuffix("\n")
    if not value:
        raise CommandError(
            f"the value for {name} is empty; give it on stdin or with --from-env VARIABLE",
            EXIT_USAGE,
        )
    return value


def secrets_set(name: str, from_env: str | None, as_json: bool) -> int:
    value = _secret_value(name, from_env)
    client = Client.from_env()
    status, secret = call(
        lambda: client.request("PUT", f"/api/v1/secrets/{_segment(name)}", {"value": value})
    )
    if as_json:
        print_json(secret)
        return EXIT_OK
    print(f"{'Created' if status == 201 else 'Replaced'} secret {secret['name']}")
    return EXIT_OK


def secrets_ls(as_json: bool) -> int:
    client = Client.from_env()
    secrets: list[dict] = []
    path: str | None = "/api/v1/secrets?limit=1000"
    while path:
        page = call(lambda path=path: client.request("GET", path)[1])
        secrets += page["results"]
        following = urllib.parse.urlsplit(page.get("next") or "")
        path = following.path + (f"?{following.query}" if following.query else "") or None
    if as_json:
        print_json(secrets)
        return EXIT_OK
    if not secrets:
        print("No secrets. Set one with `chalkcompute secrets set NAME` (the value on stdin).")
        return EXIT_OK
    _table([("NAME", "UPDATED")] + [(s["name"], when(s["updated_at"])) for s in secrets])
    return EXIT_OK


# --- logs --------------------------------------------------------------------------------------


# What a log may hold that a terminal would act on rather than show: ANSI/VT escape sequences
# (CSI such as colours and cursor moves, OSC such as window titles and hyperlinks, DCS, SOS,
# PM and APC strings up to their terminator, or to the end of the text without one, and
# the other ESC sequences), in their 7-bit and 8-bit (C1) forms, then every other C0 control
# but tab and newline, DEL and the C1 controls U+0080-U+009F.
_TERMINAL_SEQUENCE = re.compile(
    r"(?:\x1b\[|\x9b)[0-?]*[ -/]*[@-~]?"
    r"|(?:\x1b[\]PX^_]|[\x90\x98\x9d\x9e\x9f])[^\x07\x1b\x9c]*(?:\x07|\x1b\\|\x9c)?"
    r"|\x1b[ -/]*[0-~]?"
)
_CONTROL = re.compile(r"[\x00-\x08\x0b-\x1f\x7f-\x9f]")


def printable(text: str) -> str:
    """`text` without what would make a terminal do rather than show (see above): a log
    line cannot set the title, move the cursor, rewrite earlier lines or write a link."""
    return _CONTROL.sub("", _TERMINAL_SEQUENCE.sub("", text))


class _HelpFormatter(argparse.HelpFormatter):
    """Wraps descriptions as usual but keeps the lines of a text laid out by hand (the exit
    statuses)."""

    def _fill_text(self, text: str, width: int, indent: str) -> str:
        if "\n" in text:
            return "".join(indent + line for line in text.splitlines(keepends=True))
        return super()._fill_text(text, width, indent)


def logs(run_id: int, follow: bool, as_json: bool) -> int:
    """Prints a run's log (with --json, one JSON object per line); with --follow, keeps
    printing new lines until the run ends. Once the run has ended, says how on stderr, with
    the reason and the last traceback when it did not succeed, and exits by its outcome
    (EXIT_STATUSES)."""
    client = Client.from_env()
    after = 0
    while True:
        page = call(lambda after=after: client.run_logs(run_id, after))
        for line in page["results"]:
            if as_json:
                print(json.dumps(line, ensure_ascii=False), flush=True)
                continue
            level = f" {line['level']}" if line["level"] else ""
            stream = "" if line["stream"] == "stdout" else f" [{line['stream']}]"
            print(printable(f"{line['ts'][11:19]}{stream}{level} {line['text']}"), flush=True)
        after = page["next_after"]
        if page["results"]:
            continue  # a full page: more may be waiting
        if page["finished"]:
            if page["status"] == "succeeded":
                print(f"run {run_id} succeeded", file=sys.stderr)
                return EXIT_OK
            run = call(lambda: client.get_run(run_id))
            print(printable(_outcome(run)), file=sys.stderr)
            return EXIT_RUN_UNSUCCESSFUL
        if not follow:
            return EXIT_OK
        time.sleep(FOLLOW_INTERVAL_SECONDS)


def _outcome(run: dict) -> str:
    """What the run page says of a run that did not succeed: its last attempt's traceback,
    then "run 7 failed after 3 attempts: ValueError: ..." (the run's status reason, else the
    last attempt's error or the platform's reason for ending it)."""
    attempts = run.get("attempts") or []
    last = attempts[-1] if attempts else {}
    reason = run.get("status_reason") or ""
    if not reason and last.get("error_type"):
        message = last.get("error_message")
        reason = f"{last['error_type']}: {message}" if message else last["error_type"]
    reason = reason or last.get("reason") or ""
    tried = f" after {len(attempts)} attempts" if len(attempts) > 1 else ""
    summary = f"run {run['id']} {run['status']}{tried}" + (f": {reason}" if reason else "")
    traceback = (last.get("traceback") or "").rstrip("\n")
    return f"{traceback}\n{summary}" if traceback else summary


# --- the command line --------------------------------------------------------------------------


def _run_id(text: str) -> int:
    if not text.isdigit() or int(text) < 1:
        raise argparse.ArgumentTypeError(
            f"{text!r} is not a run id; give the number `chalkcompute runs NAME` lists, e.g. 12"
        )
    return int(text)


def _limit(text: str) -> int:
    if not text.isdigit() or not 1 <= int(text) <= MAX_RUNS_SHOWN:
        raise argparse.ArgumentTypeError(f"{text!r}: give a number from 1 to {MAX_RUNS_SHOWN}")
    return int(text)


def _count(text: str) -> int:
    if not text.isdigit():
        raise argparse.ArgumentTypeError(f"{text!r} is not a whole number, e.g. 2")
    return int(text)


def parser() -> argparse.ArgumentParser:
    machine = argparse.ArgumentParser(add_help=False)
    machine.add_argument(
        "--json", action="store_true", help="print the server's JSON documents instead of text"
    )
    top = argparse.ArgumentParser(
        prog="chalkcompute",
        description="Deploy, list, run, backfill, pause and resume Chalkweb functions, read "
        "their runs and logs, and set secrets. The server is CHALK_COMPUTE_URL "
        "(default http://127.0.0.1:8000); the API token is CHALK_COMPUTE_TOKEN.",
        epilog=EXIT_STATUSES,
        formatter_class=_HelpFormatter,
    )
    commands = top.add_subparsers(dest="command", required=True, metavar="COMMAND")

    def command(name: str, help: str, **options) -> argparse.ArgumentParser:
        return commands.add_parser(
            name, help=help, parents=[machine], epilog=EXIT_STATUSES,
            formatter_class=_HelpFormatter, **options,
        )  # fmt: skip

    command("deploy", "deploy the functions a file declares").add_argument(
        "file", metavar="FILE", help="a Python script, e.g. my_job.py"
    )
    command("ls", "list the deployed functions")
    command("run", "run a deployed function now").add_argument(
        "name", metavar="NAME", help="the function's name"
    )
    logs_parser = command(
        "logs",
        "print a run's log",
        description="Print a run's log. Once the run has ended, stderr says how it ended and, "
        "when it did not succeed, why (with the last attempt's traceback).",
    )
    logs_parser.add_argument("run_id", metavar="RUN_ID", type=_run_id, help="the run's id")
    logs_parser.add_argument(
        "--follow", "-f", action="store_true", help="keep printing until the run ends"
    )
    pause_parser = command("pause", "stop scheduling a function (runs already started finish)")
    pause_parser.add_argument("name", metavar="NAME", help="the function's name")
    pause_parser.add_argument("--reason", default="", help="why, shown to everyone (audited)")
    command("resume", "schedule a paused function again").add_argument(
        "name", metavar="NAME", help="the function's name"
    )
    runs_parser = command("runs", "list a function's recent runs, newest first")
    runs_parser.add_argument("name", metavar="NAME", help="the function's name")
    runs_parser.add_argument("--status", choices=RUN_STATUSES, help="only runs in this status")
    runs_parser.add_argument(
        "--limit", type=_limit, default=RUNS_SHOWN, help=f"at most this many (default {RUNS_SHOWN})"
    )
    command("cancel", "cancel a run that has not ended").add_argument(
        "run_id", metavar="RUN_ID", type=_run_id, help="the run's id"
    )
    backfill_parser = command(
        "backfill",
        "run a function once for every slot of its schedule in a past range",
        description="Run a function's current version once for every slot of its schedule "
        "from --from to --to (both included; --to at or before now), in slot order, "
        "--parallel at a time. Slots whose run already succeeded are skipped unless --rerun. "
        "The live schedule carries on as before. A large range asks for a confirmation "
        "(--yes gives it).",
    )
    backfill_parser.add_argument("name", metavar="NAME", help="the function's name")
    backfill_parser.add_argument(
        "--from", dest="start", metavar="ISO", required=True,
        help="the range's start, ISO 8601 with an offset or Z, e.g. 2026-12-01T00:00Z",
    )  # fmt: skip
    backfill_parser.add_argument(
        "--to", dest="end", metavar="ISO", required=True, help="the range's end, likewise"
    )
    backfill_parser.add_argument(
        "--rerun", action="store_true", help="run slots that already succeeded too"
    )
    backfill_parser.add_argument(
        "--parallel", type=_count, default=1, metavar="N", help="runs at once (default 1)"
    )
    backfill_parser.add_argument(
        "--yes", "-y", action="store_true", help="start a large backfill without asking"
    )
    secrets_parser = command("secrets", "set and list secrets (values are never shown)")
    secret_commands = secrets_parser.add_subparsers(
        dest="secrets_command", required=True, metavar="COMMAND"
    )
    set_parser = secret_commands.add_parser(
        "set",
        parents=[machine],
        help="create or replace a secret",
        description="Create or replace a secret. The value comes from stdin (typed without "
        'echo at a terminal, or piped: `printf %s "$KEY" | chalkcompute secrets set NAME`) '
        "or from an environment variable with --from-env; never from an argument, which "
        "`ps` and shell history would show.",
    )
    set_parser.add_argument("name", metavar="NAME", help="the secret's name, e.g. EXCHANGE_API_KEY")
    set_parser.add_argument(
        "--from-env", metavar="VARIABLE", help="read the value from this environment variable"
    )
    secret_commands.add_parser("ls", parents=[machine], help="list the secrets' names")
    return top


def main(argv: Sequence[str] | None = None) -> int:
    args = parser().parse_args(argv)
    as_json = args.json
    try:
        if args.command == "deploy":
            return deploy(args.file, as_json)
        if args.command == "ls":
            return ls(as_json)
        if args.command == "run":
            return run(args.name, as_json)
        if args.command == "logs":
            return logs(args.run_id, args.follow, as_json)
        if args.command == "pause":
            return pause(args.name, args.reason, as_json)
        if args.command == "resume":
            return resume(args.name, as_json)
        if args.command == "runs":
            return runs(args.name, args.status, args.limit, as_json)
        if args.command == "cancel":
            return cancel(args.run_id, as_json)
        if args.command == "backfill":
            return backfill(
                args.name, args.start, args.end, args.rerun, args.parallel, args.yes, as_json
            )
        if args.secrets_command == "set":
            return secrets_set(args.name, args.from_env, as_json)
        return secrets_ls(as_json)
    except CommandError as exc:
        print(printable(f"chalkcompute: {exc}"), file=sys.stderr)
        return exc.status
    except BrokenPipeError:  # `chalkcompute ls | head`: the reader has all it wanted
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 0


if __name__ == "__main__":
    raise SystemExit(main())
