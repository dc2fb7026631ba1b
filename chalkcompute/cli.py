"""The `chalkcompute` command: `deploy FILE` and `ls`."""

import argparse
import runpy
import sys
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


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="chalkcompute",
        description="Deploy and list Chalkweb functions. The server is CHALK_COMPUTE_URL "
        "(default http://127.0.0.1:8000); the API token is CHALK_COMPUTE_TOKEN.",
    )
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    deploy_parser = commands.add_parser("deploy", help="deploy the functions a file declares")
    deploy_parser.add_argument("file", metavar="FILE", help="a Python script, e.g. my_job.py")
    commands.add_parser("ls", help="list the deployed functions")
    args = parser.parse_args(argv)
    try:
        if args.command == "deploy":
            return deploy(args.file)
        return ls()
    except DeployError as exc:
        print(f"chalkcompute: {exc}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    raise SystemExit(main())
