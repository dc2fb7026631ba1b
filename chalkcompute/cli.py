"""The `chalkcompute` command: `deploy FILE`, `run NAME`, `logs RUN_ID [--follow]` and `ls`."""

import argparse
import re
import runpy
import sys
import time
from collections.abc import Sequence
from datetime import datetime
from pathlib import Path

from chalkcompute.client import ChalkClientError, Client
from chalkcompute.decorator import ChalkFunction, InvalidFunctionError
from chalkcompute.deploy import DeployError, deploy_function, format_summary

# The name the deployed file runs under: anything but "__main__", so that the decorator's
# deploy-on-definition stays quiet and this command deploys what it collects instead.
DEPLOY_RUN_NAME = "__chalkcompute_deploy__"


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


def deploy(file: str) -> int:
    path = Path(file).resolve()
    if not path.is_file():
        raise DeployError(f"{file} is not a file; give the path of a Python script")
    try:
        functions = collect(path)
    except InvalidFunctionError as exc:
        raise DeployError(str(exc)) from None
    if not functions:
        raise DeployError(
            f"{file} declares no function with @chalkcompute.function at its top level"
        )
    client = Client.from_env()
    for declared in functions:
        print(format_summary(deploy_function(declared, source_path=path, client=client)))
    return 0


def _utc(moment: str | None) -> str:
    if not moment:
        return "-"
    return datetime.fromisoformat(moment.replace("Z", "+00:00")).strftime("%Y-%m-%d %H:%M UTC")


def ls() -> int:
    try:
        functions = Client.from_env().list_functions()
    except ChalkClientError as exc:
        raise DeployError(str(exc)) from None
    if not functions:
        print("No functions deployed. Deploy one with `python my_job.py`.")
        return 0
    rows = [("NAME", "SCHEDULE", "NEXT RUN", "PAUSED")]
    for function in functions:
        schedule = function["schedule_description"]
        if function["cron"]:
            schedule += f" ({function['cron']})"
        paused = "yes" if function["paused"] else "no"
        rows.append((function["name"], schedule, _utc(function["next_fire_at"]), paused))
    widths = [max(len(row[column]) for row in rows) for column in range(3)]
    for row in rows:
        padded = [row[column].ljust(widths[column]) for column in range(3)]
        print("  ".join([*padded, row[3]]))
    return 0


def run(name: str) -> int:
    try:
        run = Client.from_env().trigger(name)
    except ChalkClientError as exc:
        raise DeployError(str(exc)) from None
    print(f"Started run {run['id']} of {run['function']} (version {run['version']})")
    print(f"  logs     chalkcompute logs {run['id']} --follow")
    return 0


FOLLOW_INTERVAL_SECONDS = 1.0

# Exit statuses, also listed in --help.
EXIT_OK = 0
EXIT_ERROR = 1  # the command could not do its job: no server, a refused token, no such run
EXIT_USAGE = 2  # argparse's own, for a mistyped command line
EXIT_RUN_UNSUCCESSFUL = 3  # `logs`: the run ended but did not succeed
EXIT_STATUSES = f"""exit status:
  {EXIT_OK}  success; for `logs`, the run succeeded (or, without --follow, is still going)
  {EXIT_ERROR}  the command failed: server unreachable, token refused, no such run or function,
     a file that declares no function
  {EXIT_USAGE}  the command line is not valid
  {EXIT_RUN_UNSUCCESSFUL}  `logs`: the run ended without succeeding (failed, timed_out, cancelled,
     lost or skipped); stderr says why"""


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


def logs(run_id: int, follow: bool) -> int:
    """Prints a run's log; with --follow, keeps printing new lines until the run ends. Once the
    run has ended, says how on stderr, with the reason and the last traceback when it did not
    succeed, and exits by its outcome (EXIT_STATUSES)."""
    client = Client.from_env()
    after = 0
    while True:
        try:
            page = client.run_logs(run_id, after)
        except ChalkClientError as exc:
            raise DeployError(str(exc)) from None
        for line in page["results"]:
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
            try:
                run = client.get_run(run_id)
            except ChalkClientError as exc:
                raise DeployError(str(exc)) from None
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


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="chalkcompute",
        description="Deploy, list and run Chalkweb functions and read their logs. "
        "The server is CHALK_COMPUTE_URL "
        "(default http://127.0.0.1:8000); the API token is CHALK_COMPUTE_TOKEN.",
        epilog=EXIT_STATUSES,
        formatter_class=_HelpFormatter,
    )
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    deploy_parser = commands.add_parser("deploy", help="deploy the functions a file declares")
    deploy_parser.add_argument("file", metavar="FILE", help="a Python script, e.g. my_job.py")
    commands.add_parser("ls", help="list the deployed functions")
    run_parser = commands.add_parser("run", help="run a deployed function now")
    run_parser.add_argument("name", metavar="NAME", help="the function's name")
    logs_parser = commands.add_parser(
        "logs",
        help="print a run's log",
        description="Print a run's log. Once the run has ended, stderr says how it ended and, "
        "when it did not succeed, why (with the last attempt's traceback).",
        epilog=EXIT_STATUSES,
        formatter_class=_HelpFormatter,
    )
    logs_parser.add_argument("run_id", metavar="RUN_ID", type=int, help="the run's id")
    logs_parser.add_argument(
        "--follow", "-f", action="store_true", help="keep printing until the run ends"
    )
    args = parser.parse_args(argv)
    try:
        if args.command == "deploy":
            return deploy(args.file)
        if args.command == "run":
            return run(args.name)
        if args.command == "logs":
            return logs(args.run_id, args.follow)
        return ls()
    except DeployError as exc:
        print(printable(f"chalkcompute: {exc}"), file=sys.stderr)
        return EXIT_ERROR


if __name__ == "__main__":
    raise SystemExit(main())
