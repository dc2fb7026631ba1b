"""Deploying declared functions to a Chalkweb server.

`python my_job.py` runs the script as `__main__`: the decorator calls `deploy_if_main` for
each function as it is defined, and that deploys it. Importing the module elsewhere does not
deploy (its functions' module is not `__main__`), nothing deploys inside a run (the runner sets
CHALK_IN_RUN=1), and `chalkcompute deploy FILE` runs the file under another name and deploys
what it collects. Standard library only.
"""

import os
import sys
from datetime import datetime
from pathlib import Path

from chalkcompute.alerts import Alerts
from chalkcompute.client import ChalkClientError, Client
from chalkcompute.declaration import ChalkFunction
from chalkcompute.secret import MissingSecretError


class DeployError(Exception):
    """A deploy cannot happen; str() says why and what to do."""


def deploy_if_main(declared: ChalkFunction) -> None:
    """Deploys `declared` when its script runs as `__main__` (and not inside a run). On
    failure, prints the message to stderr and exits with status 1: no traceback."""
    if declared.fn.__module__ != "__main__" or os.environ.get("CHALK_IN_RUN"):
        return
    main = sys.modules.get("__main__")
    source_path = getattr(main, "__file__", None)
    if not source_path:
        raise DeployError(
            f"cannot deploy {declared.name}: it is defined in an interactive session or "
            "`python -c`, which has no source file to ship. Save it in a file and run "
            "`python FILE.py` (or `chalkcompute deploy FILE.py`)"
        )
    try:
        document = deploy_function(
            declared, source_path=Path(source_path), client=Client.from_env()
        )
    except DeployError as exc:
        print(f"chalkcompute: {exc}", file=sys.stderr)
        raise SystemExit(1) from None
    print(format_summary(document), flush=True)


def _check_module_level(declared: ChalkFunction) -> None:
    fn = declared.fn
    if fn.__qualname__ != fn.__name__:
        raise DeployError(
            f"cannot deploy {declared.name}: {fn.__qualname__} is not defined at the top level "
            f"of its module, so the platform cannot find it by name. Move `def {fn.__name__}` "
            "to the top level of the file (not inside a function or a class)"
        )


def deploy_payload(declared: ChalkFunction, *, source: str, source_filename: str) -> dict:
    """The body of PUT /api/v1/functions/{name}: the code, then the spec's canonical JSON."""
    return {
        "source": source,
        "source_filename": source_filename,
        "entrypoint": declared.fn.__name__,
        **declared.spec.as_dict(),
    }


def deploy_function(declared: ChalkFunction, *, source_path: Path, client: Client) -> dict:
    """Deploys one function whose module is the file `source_path`; returns the server's
    function document (with "deploy": created, updated or unchanged).

    1. Check it can be found by name at run time (module level) and read the source file.
    2. Read every Secret.from_env value, so a missing one stops the deploy before any upload.
    3. Upload those values (PUT /api/v1/secrets/NAME), then the function.
    """
    _check_module_level(declared)
    try:
        source = source_path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise DeployError(
            f"cannot deploy {declared.name}: cannot read {source_path}: {exc}"
        ) from None
    try:
        local_values = {s.name: s.local_value() for s in declared.secrets if s.from_local_env}
    except MissingSecretError as exc:
        raise DeployError(f"cannot deploy {declared.name}: {exc}") from None
    try:
        for name, value in local_values.items():
            client.put_secret(name, value)
        payload = deploy_payload(declared, source=source, source_filename=source_path.name)
        document = client.deploy_function(declared.name, payload)
    except ChalkClientError as exc:
        raise DeployError(f"cannot deploy {declared.name}: {exc}") from None
    return document


def _utc(moment: str) -> str:
    return datetime.fromisoformat(moment.replace("Z", "+00:00")).strftime("%Y-%m-%d %H:%M UTC")


def format_summary(document: dict) -> str:
    """What a deploy prints: the outcome, the schedule in words, the next runs, the console."""
    name, version = document["name"], document["version"]
    if document.get("deploy") == "unchanged":
        lines = [f"{name}: unchanged (version {version})"]
    else:
        lines = [f"Deployed {name}: version {version}"]
    if document["cron"]:
        lines.append(f"  schedule   {document['schedule_description']} ({document['cron']}, UTC)")
        if document["paused"]:
            lines.append("  next runs  none: the function is paused")
        else:
            next_runs = ", ".join(_utc(moment) for moment in document["next_runs"])
            lines.append(f"  next runs  {next_runs}")
    else:
        lines.append("  schedule   on demand (no schedule)")
    if document["secrets"]:
        lines.append(f"  secrets    {', '.join(document['secrets'])}")
    alerts = Alerts.coerce(document.get("alerts")).describe()
    if alerts:
        lines.append(f"  alerts     {alerts}")
    lines.append(f"  console    {document['console_url']}")
    return "\n".join(lines)
