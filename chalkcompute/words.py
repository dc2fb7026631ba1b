"""Durations and sizes in words, the one way every part of Chalkweb says them: the SDK's
messages and CLI, the runner's, and the server's pages, alerts and errors.

- duration: compact, for tables and figures ("0.4 s", "3 min 12 s", "2 h 5 min");
- spelled_duration: in a sentence ("45 seconds", "1 hour", "90 minutes", "3 days");
- relative: a moment from now, for a glance ("now", "in 4 min", "3 h ago");
- interval: as the SDK's options are written ("90s", "10m", "2h", "1d");
- size: bytes ("80.0 MiB", "1.50 GiB").

Standard library only: the runner uses it in every run image.
"""

import datetime as dt
import math

NOTHING = "—"  # what a table shows for no value
_SPELLED_UNITS = (("day", 86400), ("hour", 3600), ("minute", 60))


def duration(seconds: float | None) -> str:
    """A duration as people read it in a table: "0.4 s", "12 s", "3 min 12 s", "2 h 5 min",
    "3 d 4 h"; NOTHING for None."""
    if seconds is None:
        return NOTHING
    seconds = float(seconds)
    if seconds < 10:
        return f"{seconds:.1f} s"
    if seconds < 60:
        return f"{seconds:.0f} s"
    minutes, secs = divmod(int(round(seconds)), 60)
    if minutes < 60:
        return f"{minutes} min {secs} s" if secs else f"{minutes} min"
    hours, minutes = divmod(minutes, 60)
    if hours < 48:
        return f"{hours} h {minutes} min" if minutes else f"{hours} h"
    days, hours = divmod(hours, 24)
    return f"{days} d {hours} h" if hours else f"{days} d"


def spelled_duration(seconds: float | dt.timedelta, *, round_up: bool = False) -> str:
    """A duration in a sentence: in the largest unit that counts it exactly ("1 hour",
    "90 minutes", "2 days"), else in the largest unit it holds at least twice, rounded down
    ("62 minutes" for 3,725 s), or up with `round_up` (a wait is never said shorter than it
    is); under two minutes that are not one, in seconds ("45 seconds")."""
    if isinstance(seconds, dt.timedelta):
        seconds = seconds.total_seconds()
    whole = int(seconds)
    for unit, size in _SPELLED_UNITS:
        if whole >= size and whole % size == 0:
            return _count(whole // size, unit)
    for unit, size in _SPELLED_UNITS:
        if whole >= 2 * size:
            return _count(math.ceil(seconds / size) if round_up else whole // size, unit)
    return _count(whole, "second")


def _count(count: int, unit: str) -> str:
    return f"{count} {unit}{'' if count == 1 else 's'}"


def relative(seconds: float) -> str:
    """A moment `seconds` from now (negative: past), coarse, for a glance: "now", "in 12 s",
    "in 4 min", "3 h ago". The exact time belongs beside it."""
    away = abs(seconds)
    if away < 1:
        return "now"
    words = duration(away) if away < 60 else duration(round(away / 60) * 60)
    return f"in {words}" if seconds > 0 else f"{words} ago"


def interval(seconds: float) -> str:
    """A duration as the SDK's options take it: "1d", "6h", "10m", "90s"."""
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60)):
        if seconds >= size and seconds % size == 0:
            return f"{int(seconds // size)}{unit}"
    return f"{seconds:g}s"


def size(size_bytes: int | None) -> str:
    """Bytes in binary units: "80.0 MiB", "1.50 GiB"; NOTHING for None."""
    if size_bytes is None:
        return NOTHING
    mib = size_bytes / 2**20
    if mib >= 1024:
        return f"{mib / 1024:.2f} GiB"
    return f"{mib:.1f} MiB"
