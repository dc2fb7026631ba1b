"""Deploying declared functions to a Chalkweb server.

`python my_job.py` runs the script as `__main__`: the decorator calls `deploy_if_main` for
each function as it is defined, and that deploys it. Importing the module elsewhere does not
deploy (its functions' module is not `__main__`), nothing deploys inside a run (the runner sets
CHALK_IN_RUN=1), and `chalkcompute deploy FILE` runs the file under another name and deploys
what it collects. `fn.deploy()` deploys one function from wherever it was declared.

Functions declared in modules the script imports are not deployed: a script that is run says
so at its end, naming them, instead of ending silently. Standard library only.
"""

import atexit
import base64
import os
import sys
from collections.abc import Callable
from datetime import datetime
from pathlib import Path, PurePosixPath
from typing import Any, Protocol
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from chalkcompute.alerts import Alerts
from chalkcompute.client import ChalkClientError, Client, RequestRejectedError
from chalkcompute.errors import FunctionError
from chalkcompute.image import InvalidImageError, LocalSource, read_sources
from chalkcompute.secret import LOCAL, LOCAL_OR_STORED, MissingSecretError, Secret
from chalkcompute.siblings import sibling_sources
from chalkcompute.spec import FunctionSpec


class DeployError(FunctionError):
    """A deploy cannot happen; str() says why and what to do."""


class Declared(Protocol):
    """What a deploy reads of a declared function (chalkcompute.ChalkFunction)."""

    fn: Callable[..., Any]
    name: str
    spec: FunctionSpec
    secrets: tuple[Secret, ...]


# Functions declared outside the script that is run, not deployed (yet), by id.
_NOT_DEPLOYED: dict[int, Declared] = {}


def _run_as_script() -> bool:
    """`python FILE.py`: not `python -m tool`, a REPL, `-c` or `chalkcompute deploy` (which
    says what it deploys). Asked while the script runs: Python removes `__main__.__file__`
    before the interpreter exits."""
    main = sys.modules.get("__main__")
    return (
        getattr(main, "__spec__", None) is None
        and bool(getattr(main, "__file__", None))
        and "chalkcompute.cli" not in sys.modules
    )


def note_declared(declared: Declared) -> None:
    """Remembers a function declared in a module a script imported, for the notice at exit."""
    if declared.fn.__module__ == "__main__" or os.environ.get("CHALK_IN_RUN"):
        return
    if not _run_as_script():
        return
    if not _NOT_DEPLOYED:
        atexit.register(_say_what_was_not_deployed)
    _NOT_DEPLOYED[id(declared)] = declared


def _say_what_was_not_deployed() -> None:
    if not _NOT_DEPLOYED:
        return
    names = [f"{d.name} ({Path(_source_path(d) or '?').name})" for d in _NOT_DEPLOYED.values()]
    count = len(names)
    print(
        f"chalkcompute: {count} function{'s' if count > 1 else ''} declared in imported "
        f"modules {'were' if count > 1 else 'was'} not deployed: {', '.join(names)}. Only the "
        "script you run deploys its own functions; run `python FILE.py` or `chalkcompute "
        "deploy FILE.py` for each module, or call fn.deploy()",
        file=sys.stderr,
    )


def deploy_if_main(declared: Declared) -> None:
    """Deploys `declared` when its script runs as `__main__` (and not inside a run). On
    failure, prints the message to stderr and exits with status 1: no traceback."""
    if declared.fn.__module__ != "__main__" or os.environ.get("CHALK_IN_RUN"):
        return
    source_path = _source_path(declared)
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
    _print_summary(document)


def deploy_declared(declared: Declared) -> dict:
    """`fn.deploy()`: deploys `declared` from the file of its module and prints the summary."""
    source_path = _source_path(declared)
    if not source_path:
        raise DeployError(
            f"cannot deploy {declared.name}: its module has no source file to ship; save it "
            "in a file"
        )
    document = deploy_function(declared, source_path=Path(source_path), client=Client.from_env())
    _print_summary(document)
    return document


def _print_summary(document: dict) -> None:
    """Prints what a deploy did. A reader that stopped early (`python jobs.py | head`) does not
    stop the script: the deploy happened, and the script's other functions still deploy."""
    try:
        print(format_summary(document), flush=True)
    except BrokenPipeError:
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())


def _source_path(declared: Declared) -> str | None:
    module = sys.modules.get(declared.fn.__module__)
    return getattr(module, "__file__", None)


def _check_module_level(declared: Declared) -> None:
    fn = declared.fn
    if fn.__qualname__ != fn.__name__:
        raise DeployError(
            f"cannot deploy {declared.name}: {fn.__qualname__} is not defined at the top level "
            f"of its module, so the platform cannot find it by name. Move `def {fn.__name__}` "
            "to the top level of the file (not inside a function or a class)"
        )


def deploy_payload(
    declared: Declared,
    *,
    source: str,
    source_filename: str,
    files: dict[str, bytes] | None = None,
) -> dict:
    """The body of PUT /api/v1/functions/{name}: the code, then the spec's canonical JSON.
    Files shipped with it (the image's local sources) go as base64, only when there are any."""
    payload = {
        "source": source,
        "source_filename": source_filename,
        "entrypoint": declared.fn.__name__,
        **declared.spec.as_dict(),
    }
    if files:
        payload["files"] = [
            {"path": path, "content_base64": base64.b64encode(content).decode("ascii")}
            for path, content in sorted(files.items())
        ]
    return payload


def _upload(client: Client, name: str, value: str) -> str:
    """Stores a local value; returns how the server took it: created, replaced or unchanged."""
    status, body = client.request("PUT", f"/api/v1/secrets/{name}", {"value": value})
    if isinstance(body, dict) and body.get("change") in ("created", "replaced", "unchanged"):
        return body["change"]
    return "created" if status == 201 else "replaced"


def deploy_function(declared: Declared, *, source_path: Path, client: Client) -> dict:
    """Deploys one function whose module is the file `source_path`; returns the server's
    function document (with "deploy": created, updated or unchanged, and "uploaded": how each
    local secret value was taken).

    1. Check it can be found by name at run time (module level), read the source file and
       the files it ships.
    2. Read every local secret value (from_env, from_local_env, .env files), so a missing one
       stops the deploy before any upload; a from_env not set here is the stored secret.
    3. Upload those values (PUT /api/v1/secrets/NAME), then the function.
    """
    _check_module_level(declared)
    try:
        source = source_path.read_text(encoding="utf-8")
        files = declared.spec.image.local_files()
        shipped = {PurePosixPath(path).parts[0].removesuffix(".py") for path in files}
        siblings = sibling_sources(source_path, shipped)
        files = {**read_sources(siblings), **files}  # the image's own files win
    except (OSError, UnicodeDecodeError, InvalidImageError) as exc:
        raise DeployError(
            f"cannot deploy {declared.name}: cannot read {source_path}: {exc}"
        ) from None
    try:
        local_values = {
            s.name: s.local_value()
            for s in declared.secrets
            if s.source in (LOCAL, LOCAL_OR_STORED)
        }
    except MissingSecretError as exc:
        raise DeployError(f"cannot deploy {declared.name}: {exc}") from None
    stored = sorted(name for name, value in local_values.items() if value is None)
    try:
        uploaded = {
            name: _upload(client, name, value)
            for name, value in local_values.items()
            if value is not None
        }
        payload = deploy_payload(
            declared, source=source, source_filename=source_path.name, files=files
        )
        document = client.deploy_function(declared.name, payload)
    except RequestRejectedError as exc:
        if exc.code == "unknown_secret" and stored:
            raise DeployError(
                f"cannot deploy {declared.name}: Secret.from_env({stored[0]!r}): ${stored[0]} "
                f"is not set here and no secret {stored[0]} is stored on the server; export "
                f"{stored[0]}=... before deploying"
            ) from None
        if exc.code == "invalid_files" and siblings:
            imported = ", ".join(_shipped_imports(siblings))
            raise DeployError(
                f"cannot deploy {declared.name}: {exc} (shipped because the script imports "
                f"them from its folder: {imported})"
            ) from None
        raise DeployError(f"cannot deploy {declared.name}: {exc}") from None
    except ChalkClientError as exc:
        raise DeployError(f"cannot deploy {declared.name}: {exc}") from None
    _NOT_DEPLOYED.pop(id(declared), None)
    return {
        **document,
        "uploaded": uploaded,
        "taken_as_stored": stored,
        "shipped_imports": _shipped_imports(siblings),
    }


def _shipped_imports(siblings: list[LocalSource]) -> list[str]:
    return [source.dest + ("/" if source.path.is_dir() else "") for source in siblings]


def when(moment: str | None, zone: str | None = None) -> str:
    """An instant from the API as people read it: "2027-03-29 07:00 UTC", or in a schedule's
    zone "2027-03-29 09:00 CEST (07:00 UTC)"; "-" for none."""
    if not moment:
        return "-"
    at = datetime.fromisoformat(moment.replace("Z", "+00:00"))
    try:
        local = at.astimezone(ZoneInfo(zone)) if zone else None
    except ZoneInfoNotFoundError:  # this machine lacks the zone data (tzdata) the server has
        local = None
    if local is None:
        return at.strftime("%Y-%m-%d %H:%M UTC")
    return f"{local:%Y-%m-%d %H:%M %Z} ({at:%H:%M} UTC)"


UPLOADED = {
    "created": "new on the server",
    "replaced": "REPLACED the different value stored on the server",
    "unchanged": "the same as the value stored on the server",
}


def format_summary(document: dict) -> str:
    """What a deploy prints: the outcome, the schedule in words, the next runs, the secrets
    (which local values were uploaded, which stored ones are used), the console."""
    name, version = document["name"], document["version"]
    if document.get("deploy") == "unchanged":
        lines = [f"{name}: unchanged (version {version})"]
    else:
        lines = [f"Deployed {name}: version {version}"]
    if document["cron"]:
        zone = document.get("timezone")
        cron = f"{document['cron']}, {zone or 'UTC'}"
        lines.append(f"  schedule   {document['schedule_description']} ({cron})")
        if document["paused"]:
            lines.append("  next runs  none: the function is paused")
        else:
            next_runs = ", ".join(when(moment, zone) for moment in document["next_runs"])
            lines.append(f"  next runs  {next_runs}")
            for fire in document.get("upcoming", []):
                if fire["note"]:
                    lines.append(f"  clocks     {fire['note']}")
    else:
        lines.append("  schedule   on demand (no schedule)")
    if document["secrets"]:
        lines.append(f"  secrets    {', '.join(document['secrets'])}")
    alerts = Alerts.coerce(document.get("alerts")).describe()
    if alerts:
        lines.append(f"  alerts     {alerts}")
    for secret, change in sorted(document.get("uploaded", {}).items()):
        lines.append(f"  uploaded   {secret} from your environment: {UPLOADED[change]}")
    for secret in document.get("taken_as_stored", []):
        lines.append(f"  stored     {secret}: not set here, so the value stored on the server")
    if document.get("shipped_imports"):
        imports = ", ".join(document["shipped_imports"])
        lines.append(f"  imports    {imports}: imported from the script's folder, shipped with it")
    if document.get("files"):
        size = sum(item["size"] for item in document["files"])
        lines.append(f"  files      {len(document['files'])} ({size} bytes) shipped with the code")
    for warning in document.get("warnings", []):
        lines.append(f"  warning    {warning}")
    lines.append(f"  console    {document['console_url']}")
    return "\n".join(lines)
