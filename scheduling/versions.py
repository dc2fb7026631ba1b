"""A version as text, and the diff between two versions, for the console's version view."""

import difflib
import json
from dataclasses import dataclass

from scheduling.models import FunctionVersion


def version_document(version: FunctionVersion) -> list[str]:
    """A version as lines of text, configuration first, for the diff between two versions."""
    retries = version.retries or {}
    lines = [
        f"schedule:   {version.schedule or 'on demand'}"
        + (f"  (cron {version.cron})" if version.cron and version.cron != version.schedule else ""),
        f"image:      {json.dumps(version.image.spec, sort_keys=True)}",
        f"cpu:        {version.cpu or 'default'}",
        f"memory:     {version.memory or 'default'}",
        f"gpu:        {version.gpu or 'none'}",
        f"retries:    {json.dumps(retries, sort_keys=True)}",
        f"timeout:    {f'{version.timeout:g} s' if version.timeout else 'none'}",
        f"overlap:    {version.overlap}",
        f"secrets:    {', '.join(version.secret_names) or 'none'}",
        f"entrypoint: {version.entrypoint} in {version.source_filename}",
        "",
    ]
    return lines + version.source.splitlines()


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
        for v in FunctionVersion.objects.select_related("image").filter(
            function=function, number__in=[diff_from, diff_to]
        )
    }
    missing = [n for n in (diff_from, diff_to) if n not in versions]
    if missing:
        error = (
            f"{function.name} has no version {missing[0]}; versions are numbered 1 to {current}."
        )
        return diff_from, diff_to, None, error
    return diff_from, diff_to, version_diff(versions[diff_from], versions[diff_to]), ""
