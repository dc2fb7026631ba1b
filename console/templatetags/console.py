"""Template filters for the console: a status as a symbol and words, durations, quantities."""

import datetime as dt
import json
from functools import lru_cache

from django import template
from django.urls import reverse
from django.utils import timezone
from django.utils.html import escape
from django.utils.safestring import mark_safe

from chalkcompute import words
from chalkcompute.runtime import returns

register = template.Library()

# Each status has a symbol as well as a colour, so it reads without colour too.
STATUS_SYMBOLS = {
    "scheduled": "◷",
    "queued": "◷",
    "starting": "◔",
    "running": "▶",
    "retrying": "↻",
    "succeeded": "✓",
    "failed": "✗",
    "timed_out": "⧗",
    "cancelled": "⊘",
    "lost": "?",
    "skipped": "↷",
    "interrupted": "↯",
    "building": "◔",
    "ready": "✓",
    "done": "✓",  # a backfill
}


@register.filter
def status_symbol(status: str) -> str:
    return STATUS_SYMBOLS.get(status, "•")


@register.filter
def status_words(status: str) -> str:
    return status.replace("_", " ")


@register.filter
def seconds(value: float | None) -> str:
    return words.duration(value)


@register.filter
def run_duration(run) -> str:
    """How long a run (or attempt) took, or has taken so far."""
    if run.started_at is None:
        return "—"
    end = run.finished_at or timezone.now()
    return seconds((end - run.started_at).total_seconds())


@register.filter
def utc(moment: dt.datetime | None) -> str:
    if moment is None:
        return "—"
    return moment.astimezone(dt.UTC).strftime("%Y-%m-%d %H:%M:%S")


@register.filter
def iso(moment: dt.datetime | None) -> str:
    return "" if moment is None else moment.astimezone(dt.UTC).isoformat()


@register.filter
def relative(moment: dt.datetime | None) -> str:
    """Coarse, "in 4 min" or "3 h ago", for a glance; the exact UTC time is shown beside it."""
    if moment is None:
        return words.NOTHING
    return words.relative((moment - timezone.now()).total_seconds())


@register.filter
def mebibytes(value: int | None) -> str:
    return words.size(value)


@register.filter
def get_item(mapping: dict, key):
    return mapping.get(key)


@lru_cache(maxsize=64)
def _mark_parts(status: str) -> tuple[str, str, str]:
    return escape(status), escape(status_words(status)), escape(status_symbol(status))


@register.filter
def run_marks(runs) -> str:
    """A function's last runs as small marks, each a link to its run with the status in
    words for screen readers and a tooltip. Built here rather than with an include per mark:
    the functions page draws 500 of them, and every part is escaped once per status."""
    if not runs:
        return mark_safe('<span class="muted">no runs yet</span>')
    prefix = escape(reverse("runs") + "/")
    marks = []
    for run in runs:
        status, words, symbol = _mark_parts(run.status)
        run_id = int(run.id)
        marks.append(
            f'<a class="mark status-{status}" href="{prefix}{run_id}" '
            f'title="Run {run_id}: {words}, {utc(run.scheduled_for)} UTC">'
            f'<span aria-hidden="true">{symbol}</span>'
            f'<span class="visually-hidden">run {run_id} {words}</span></a>'
        )
    return mark_safe("".join(marks))  # noqa: S308 - every part above is escaped or a number


@register.filter
def log_html(lines, attempt_numbers: dict) -> str:
    """Log lines as the run page shows them, one <div> each. Built here rather than with a
    template per line: a page holds 500 of them, and a poll appends up to 1,000."""
    rendered = []
    for line in lines:
        level = line.level or ""
        css = "".join(c for c in level.lower() if c.isalpha()) or "none"
        moment = line.ts.astimezone(dt.UTC)
        rendered.append(
            f'<div class="line level-{css} stream-{escape(line.stream)}" data-id="{int(line.id)}">'
            f'<time datetime="{moment.isoformat()}">{moment:%H:%M:%S}</time> '
            f'<span class="attempt-number" title="attempt">'
            f"#{escape(attempt_numbers.get(line.attempt_id, ''))}</span> "
            f'<span class="level">{escape(level or line.stream)}</span> '
            f'<span class="text">{escape(line.text)}</span></div>'
        )
    return mark_safe("".join(rendered))  # noqa: S308 - every part above is escaped or a number


@register.filter
def return_text(run) -> str:
    """What a run's function returned, as its page shows it: JSON indented, a text (a repr, a
    cut value) as it is. Escaped by the template like any text."""
    if run.return_format == returns.JSON:
        return json.dumps(run.return_value, indent=2, ensure_ascii=False)
    return run.return_value


@register.filter
def overdue(function) -> bool:
    """An active function whose next run time passed over a minute ago: no run was made."""
    from health.state import OVERDUE

    moment = getattr(function, "next_fire_at", None)
    return bool(moment and not function.paused and timezone.now() - moment > OVERDUE)
