"""A version as text, and the diff between two versions, for the console's version view."""

import difflib
import json
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from chalkcompute.alerts import Alerts
from scheduling.models import FunctionVersion


def _json(value: Any) -> str:
    return json.dumps(value, sort_keys=True)


# How the version view shows each spec field, in this order; a field not named here follows
# them, shown as its JSON.
_SHOWN: dict[str, Callable[[Any], str]] = {
    "schedule": lambda schedule: schedule or "on demand",
    "timezone": lambda zone: zone or "UTC",
    "image": _json,
    "cpu": lambda cpu: cpu or "default",
    "memory": lambda memory: memory or "default",
    "gpu": lambda gpu: gpu or "none",
    "retries": lambda retries: _json(retries or {}),
    "timeout": lambda timeout: f"{timeout:g} s" if timeout else "none",
    "overlap": str,
    "secrets": lambda names: ", ".join(names) or "none",
    # A secret's value is never shown: only the name of the secret a variable reads.
    "env": lambda env: (
        ", ".join(
            f"{name}=secret {value['secret']}" if isinstance(value, dict) else f"{name}={value}"
            for name, value in env.items()
        )
        or "none"
    ),
    "tags": lambda tags: ", ".join(f"{key}={value}" for key, value in tags.items()) or "none",
    "alerts": lambda alerts: Alerts.coerce(alerts).describe() or "the server's defaults",
}


def version_document(version: FunctionVersion) -> list[str]:
    """A version as lines of text, configuration first, for the diff between two versions."""
    spec = version.spec_document
    shown = {name: _SHOWN.get(name, _json)(value) for name, value in spec.items()}
    if version.cron and version.cron != version.schedule:
        shown["schedule"] += f"  (cron {version.cron})"
    names = [*(name for name in _SHOWN if name in shown), *(n for n in shown if n not in _SHOWN)]
    lines = [f"{name + ':':<11} {shown[name]}" for name in names]
    lines.append(f"entrypoint: {version.entrypoint} in {version.source_filename}")
    lines += [
        f"file:       {file.path} ({file.size} bytes, sha256 {file.sha256[:12]})"
        for file in version.files.all()
    ]
    return [*lines, "", *version.source.splitlines()]


@dataclass(frozen=True)
class DiffLine:
    kind: str  # "add", "remove", "hunk", "context", "file"
    text: str


def version_diff(old: FunctionVersion, new: FunctionVersion) -> list[DiffLine]:
    """A unified diff (difflib) of two versions' documents, each line tagged for display."""
    diff = difflib.unified_diff(
        version_document(old),
        version_document(new),
        fromfile=f"version {old.number}",
        tofile=f"version {new.number}",
        lineterm="",
        n=3,
    )
    tagged = []
    for line in diff:
        if line.startswith(("---", "+++")):
            kind = "file"
        elif line.startswith("@@"):
            kind = "hunk"
        elif line.startswith("+"):
            kind = "add"
        elif line.startswith("-"):
            kind = "remove"
        else:
            kind = "context"
        tagged.append(DiffLine(kind=kind, text=line))
    return tagged


def versions_to_diff(
    *, function, wanted_from: int | None, wanted_to: int | None
) -> tuple[int, int, list[DiffLine] | None, str]:
    """(from, to, diff, error) for the version view: by default the current version against
    the one before it; the diff only when a pair was asked for."""
    current = function.current_version.number if function.current_version else 0
    diff_from, diff_to = wanted_from or max(current - 1, 1), wanted_to or current
    if wanted_from is None and wanted_to is None:
        return diff_from, diff_to, None, ""
    versions = {
        v.number: v
        for v in FunctionVersion.objects.select_related("image")
        .prefetch_related("files")
        .filter(function=function, number__in=[diff_from, diff_to])
    }
    missing = [n for n in (diff_from, diff_to) if n not in versions]
    if missing:
        error = (
            f"{function.name} has no version {missing[0]}; versions are numbered 1 to {current}."
        )
        return diff_from, diff_to, None, error
    return diff_from, diff_to, version_diff(versions[diff_from], versions[diff_to]), ""
