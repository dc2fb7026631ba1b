"""Schedules for Chalkweb functions: parse, validate, compute fire times, describe in words.

This module is the one implementation of DESIGN.md §2 (a contract): the SDK validates with it at
definition time and the server computes every ``next_fire_at`` with it. It is pure standard
library so that it imports on a laptop or in a run's container without Django.

Semantics are those of Debian cron / cronie, evaluated on the wall clock of the schedule's time
zone (UTC unless an IANA name such as "Europe/Berlin" is given):

* A crontab has exactly five fields separated by spaces or tabs: minute (0-59), hour (0-23),
  day-of-month (1-31), month (1-12 or JAN-DEC) and day-of-week (0-7 or SUN-SAT, where 0 and 7
  are both Sunday). Names are case-insensitive and may be used in ranges and lists.
* A field is a comma-separated list of items: ``*``, a value ``5``, a range ``1-5``, or a step
  ``*/15`` or ``1-30/5``. A range never wraps around (``5-1`` is an error) and ``a-a`` is just
  ``a``. A step takes every n-th value of its range starting at the first, so a step larger
  than its range keeps only the first value (``*/60`` is minute 0), up to the largest step
  cron can read: the first value plus the step must fit in a 32-bit int (2147483647).
* Day rule: when the day-of-month or the day-of-week field *starts with* ``*`` (``*``, ``*/2``)
  a day must match both fields; otherwise a day matches when either field does. So
  ``0 0 13 * 5`` runs on every 13th and on every Friday, and ``0 0 */2 * 1`` runs on
  odd-numbered days that are Mondays.
* Shorthand: ``Nm`` (1-60), ``Nh`` (1-24) and ``1d``, lowercase, aligned to clock boundaries
  exactly like their crontabs: ``7m`` is ``*/7 * * * *`` (so the last gap before each hour is
  shorter), ``60m`` is ``0 * * * *``, ``6h`` is ``0 */6 * * *`` and ``1d`` is ``0 0 * * *``.
* Clock changes follow Debian cron. A *wildcard* job, whose minute or hour field starts with
  ``*`` (``*/15 * * * *``, ``0 */6 * * *``, ``10m``), follows the wall clock: it does not run
  at local times that are skipped and runs twice at local times that happen twice. A
  *fixed-time* job (``30 2 * * *``, ``1d``) runs once at a skipped local time, at the instant
  the clock jumps (skipped times and a match at the jump make one run), and only the first
  time at a local time that happens twice.

Anything else -- non-standard extensions (``L``, ``W``, ``#``, ``?``, ``~``, ``@daily``),
values out of range, reversed ranges, zero steps or steps too large for cron to read, a
crontab that can never fire, a shorthand outside its rules, or a time zone that is not an IANA
Area/Location name (abbreviations such as "PST" are ambiguous) -- raises
``InvalidScheduleError`` naming the field, the problem and the fix; nothing is silently
guessed.

``Schedule.cron`` is the canonical crontab: a shorthand's crontab equivalent, or the fields as
written joined by single spaces with month and weekday names upper-cased (the fields are not
rewritten further, because whether a day field starts with ``*`` changes its meaning).
"""

from __future__ import annotations

import calendar
import difflib
import json
import re
import unicodedata
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from functools import lru_cache
from itertools import islice, pairwise
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError, available_timezones

from chalkcompute.errors import FunctionError

UTC = timezone.utc  # noqa: UP017 - datetime.UTC is 3.11+, and run images may have 3.10

__all__ = ["MAX_LENGTH", "Fire", "InvalidScheduleError", "Schedule", "check_timezone", "parse"]

MAX_LENGTH = 200
"""Longest accepted expression, so a pasted essay is rejected before any work is done."""

_LAST_YEAR = 9999  # datetime cannot represent a fire time after this year

_MONTH_NAMES = ("JAN", "FEB", "MAR", "APR", "MAY", "JUN", "JUL", "AUG", "SEP", "OCT", "NOV", "DEC")
_DAY_NAMES = ("SUN", "MON", "TUE", "WED", "THU", "FRI", "SAT")
_MONTH_WORDS = (
    "January February March April May June July August September October November December"
).split()
_DAY_WORDS = "Sunday Monday Tuesday Wednesday Thursday Friday Saturday".split()
# Days in each month, with February at its leap-year length: a crontab is valid when its days
# exist in some year.
_MONTH_DAYS = (0, 31, 29, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31)

_FIELD_COUNT_HELP = "a crontab has exactly five fields: minute hour day-of-month month day-of-week"
_SHORTHAND_HELP = 'a shorthand is "Nm" (1-60 minutes), "Nh" (1-24 hours) or "1d"'
_NICKNAMES = {
    "@yearly": "0 0 1 1 *",
    "@annually": "0 0 1 1 *",
    "@monthly": "0 0 1 * *",
    "@weekly": "0 0 * * 0",
    "@daily": "0 0 * * *",
    "@midnight": "0 0 * * *",
    "@hourly": "0 * * * *",
}
_BLANKS = re.compile(r"[ \t]+")
_PRINTABLE_ASCII = re.compile(r"[ -~\t]*")
# An item of a field: "*" or a value or range, then an optional step. Values are checked
# (range, names) after matching; anything that does not match is explained by
# _malformed_problem.
_ITEM = re.compile(r"(?:(\*)|([0-9A-Za-z]+)(?:-([0-9A-Za-z]+))?)(?:/([0-9]+))?", re.ASCII)
# Anything made only of numbers and unit letters is treated as an attempted shorthand, so
# that "90m", "1h30m", "1.5h", "10 m" or "10" get a shorthand-specific message.
_NUMBER = r"(?:[0-9]+\.?[0-9]*|\.[0-9]+)"
_SHORTHAND_LIKE = re.compile(rf"(?:{_NUMBER}[ \t]*[A-Za-z]+[ \t]*)+|{_NUMBER}|[A-Za-z]", re.ASCII)
_SHORTHAND = re.compile(r"([0-9]+)([mhd])", re.ASCII)


class InvalidScheduleError(FunctionError, ValueError):
    """A schedule Chalkweb will not run. The message says what is wrong and how to fix it."""


@dataclass(frozen=True, eq=False)  # eq=False: hashed by identity, cheap as a cache key
class _Field:
    name: str
    unit: str
    low: int
    high: int
    names: tuple[str, ...] = ()  # names[i] stands for the value low + i

    @property
    def allowed(self) -> str:
        if self.name == "day-of-week":
            return "0-7 (0 and 7 are both Sunday) or SUN-SAT"
        if self.names:
            return f"{self.low}-{self.high} or {self.names[0]}-{self.names[-1]}"
        return f"{self.low}-{self.high}"


_MINUTE = _Field("minute", "minute", 0, 59)
_HOUR = _Field("hour", "hour", 0, 23)
_DAY_OF_MONTH = _Field("day-of-month", "day", 1, 31)
_MONTH = _Field("month", "month", 1, 12, _MONTH_NAMES)
_DAY_OF_WEEK = _Field("day-of-week", "weekday", 0, 7, _DAY_NAMES)
_FIELDS = (_MINUTE, _HOUR, _DAY_OF_MONTH, _MONTH, _DAY_OF_WEEK)

_NON_STANDARD = {
    "?": 'is a Quartz extension that cron does not support; write "*" for "any"',
    "#": 'is an extension for "n-th weekday of the month" that cron does not support',
    "~": "is a random-value extension that cron does not support; write a fixed value",
}
# "L" (last) and "W" (nearest weekday) come from Quartz and friends; standard cron has no way
# to say "last day of the month", so there is no exact rewrite to offer.
_LAST_OR_WEEKDAY = re.compile(r"L|LW|[0-9]*W|W[0-9]+|[0-9]*L|[A-Z]{3}L", re.ASCII)


class _FieldError(Exception):
    """A field is invalid; the argument completes the sentence '<field> field "<text>" ...'."""


def _quote(text: str) -> str:
    # JSON quoting shows control characters as escapes, so the message stays on one line.
    return json.dumps(text, ensure_ascii=False)


_CONTROL_NAMES = {
    "\n": "line break",
    "\r": "carriage return",
    "\v": "vertical tab",
    "\f": "form feed",
}


def _describe_char(ch: str) -> str:
    code = f"U+{ord(ch):04X}"
    if ch.isprintable() and not ch.isspace():
        return f"{_quote(ch)} ({code})"
    name = _CONTROL_NAMES.get(ch) or unicodedata.name(ch, "control character").lower()
    return f"a {name} ({code})"


# -- Parsing ---------------------------------------------------------------------------------


def parse(expr: str, timezone: str | None = None) -> Schedule:
    """Parse a crontab or shorthand, read on the wall clock of ``timezone`` (an IANA name such
    as "Europe/Berlin"; None or "UTC" for UTC); raise ``InvalidScheduleError`` saying how to
    fix either."""
    if not isinstance(expr, str):
        raise InvalidScheduleError(
            f'a schedule must be a string such as "0 * * * *" or "10m", not {type(expr).__name__}'
        )
    if timezone is None or timezone == "UTC":
        return _parse(expr)
    if not isinstance(timezone, str):
        raise InvalidScheduleError(
            f'a time zone must be a string such as "Europe/Berlin", not {type(timezone).__name__}'
        )
    return _parse_in_zone(expr, timezone)


# Schedules are immutable and a handful of crontabs are parsed over and over (every tick, every
# deploy), so parsed schedules are cached by their exact text (and zone). Errors are never
# cached. UTC has a cache of its own, keyed by the text alone, which is quicker.
@lru_cache(maxsize=4096)
def _parse(expr: str) -> Schedule:
    cron = _parse_expression(expr)
    return Schedule(
        expr=expr.strip(" \t"), cron=cron, timezone="UTC", _spec=_compile(cron), _zone=None
    )


@lru_cache(maxsize=4096)
def _parse_in_zone(expr: str, timezone: str) -> Schedule:
    in_utc = _parse(expr)
    return Schedule(
        expr=in_utc.expr,
        cron=in_utc.cron,
        timezone=timezone,
        _spec=in_utc._spec,
        _zone=_zone(timezone),
    )


def _parse_expression(expr: str) -> str:
    """The canonical crontab of a crontab or shorthand."""
    if len(expr) > MAX_LENGTH:
        raise InvalidScheduleError(
            f"invalid schedule {_quote(expr[:40])}...: it is {len(expr)} characters long; "
            f"a schedule has at most {MAX_LENGTH} characters"
        )
    text = expr.strip(" \t")
    if not text:
        raise InvalidScheduleError(
            'the schedule is empty: write a crontab such as "0 * * * *" '
            'or a shorthand such as "10m"'
        )
    if not _PRINTABLE_ASCII.fullmatch(text):
        for ch in text:
            if (ch.isspace() and ch not in " \t") or not ch.isprintable():
                raise InvalidScheduleError(
                    f"invalid schedule {_quote(text)}: it contains {_describe_char(ch)}; "
                    "a schedule is one line whose fields are separated by spaces or tabs"
                )
    if text[0] == "@":
        raise InvalidScheduleError(_nickname_message(text))
    fields = _BLANKS.split(text)
    if len(fields) == 5:
        return _parse_crontab(text, fields)
    if _SHORTHAND_LIKE.fullmatch(text):
        return _parse_shorthand(text)
    extra = ""
    if len(fields) in (6, 7):
        extra = "; seconds and years are not supported"
    elif len(fields) == 1:
        extra = f"; or use a shorthand: {_SHORTHAND_HELP}"
    raise InvalidScheduleError(
        f"invalid schedule {_quote(text)}: {_FIELD_COUNT_HELP}, but this has {len(fields)}{extra}"
    )


def _nickname_message(text: str) -> str:
    crontab = _NICKNAMES.get(text.lower())
    fix = f'write the crontab "{crontab}" instead' if crontab else "write a five-field crontab"
    return f"invalid schedule {_quote(text)}: nicknames such as @daily are not supported; {fix}"


def _parse_shorthand(text: str) -> str:
    match = _SHORTHAND.fullmatch(text)
    if match is None:
        raise InvalidScheduleError(
            f"invalid schedule {_quote(text)}: {_shorthand_problem(text)}; "
            "for anything else write a crontab instead"
        )
    count, unit = int(match[1]), match[2]
    if unit == "m" and 1 <= count <= 60:
        cron = "* * * * *" if count == 1 else "0 * * * *" if count == 60 else f"*/{count} * * * *"
    elif unit == "h" and 1 <= count <= 24:
        cron = "0 * * * *" if count == 1 else "0 0 * * *" if count == 24 else f"0 */{count} * * *"
    elif unit == "d" and count == 1:
        cron = "0 0 * * *"
    else:
        raise InvalidScheduleError(
            f"invalid schedule {_quote(text)}: {_shorthand_range_problem(count, unit)}"
        )
    return cron


def _shorthand_range_problem(count: int, unit: str) -> str:
    if count == 0:
        return f"an interval must be at least 1; {_SHORTHAND_HELP}; or write a crontab instead"
    if unit == "m":
        hours, rest = divmod(count, 60)
        if rest == 0 and hours <= 24:
            # Only offered when exact: every 120 minutes aligned to :00 is "0 */2 * * *".
            return (
                f'{count} minutes is longer than 60 minutes: write "{hours}h" or a crontab instead'
            )
        return (
            f"{count} minutes is longer than 60 minutes, the most a minute shorthand "
            "allows: write a crontab instead"
        )
    if unit == "h":
        return (
            f"{count} hours is longer than 24 hours, the most an hour shorthand allows: "
            "write a crontab instead"
        )
    return 'the only day shorthand is "1d" (every day at 00:00): write a crontab instead'


def _shorthand_problem(text: str) -> str:
    compact = _BLANKS.sub("", text)
    if compact != text and _SHORTHAND.fullmatch(compact):
        return f'a shorthand has no spaces: write "{compact}"'
    if compact.replace(".", "").isdigit():
        units = [f'"{compact}{u}"' for u in "mh" if _is_valid_shorthand(f"{compact}{u}")]
        fix = f": write {' or '.join(units)}" if units else ""
        return f"{_quote(compact)} has no unit{fix}; {_SHORTHAND_HELP}"
    if compact.isalpha():
        return f'a shorthand needs a number before the unit, e.g. "10m"; {_SHORTHAND_HELP}'
    parts = re.findall(r"([0-9.]+)([A-Za-z]+)", compact)
    if len(parts) > 1:
        return f"compound durations such as {_quote(compact)} are not supported"
    number, unit = parts[0]
    if "." in number:
        return f"fractional durations such as {_quote(compact)} are not supported"
    if unit.lower() in ("m", "h", "d"):
        lower = f"{number}{unit.lower()}"
        hint = f' ("{lower}")' if _is_valid_shorthand(lower) else ""
        return f"shorthand units are lowercase m, h and d{hint}; {_SHORTHAND_HELP}"
    if unit.lower() in ("s", "sec", "secs", "second", "seconds"):
        return 'seconds are not supported: the finest schedule is every minute ("1m")'
    if unit.lower() in ("w", "wk", "week", "weeks"):
        return f"weeks are not a shorthand unit; {_SHORTHAND_HELP}"
    return f'unit "{unit}" is not m, h or d; {_SHORTHAND_HELP}'


def _is_valid_shorthand(text: str) -> bool:
    match = _SHORTHAND.fullmatch(text)
    if match is None:
        return False
    count, unit = int(match[1]), match[2]
    return 1 <= count <= {"m": 60, "h": 24, "d": 1}[unit]


def _parse_crontab(text: str, fields: list[str]) -> str:
    values = []
    for spec, field_text in zip(_FIELDS, fields, strict=True):
        try:
            values.append(_field_values(spec, field_text))
        except _FieldError as error:
            raise InvalidScheduleError(
                f"invalid schedule {_quote(text)}: {spec.name} field {_quote(field_text)} "
                f"{error.args[0]}"
            ) from None
    if fields[2][0] == "*" or fields[4][0] == "*":
        _check_can_fire(text, fields, values[2], values[3])
    return " ".join(f.upper() for f in fields)


# Compiled crontabs are shared by every spelling of one canonical crontab ("10m" and
# "*/10 * * * *"), and so are the day tables they fill in as they are used.
@lru_cache(maxsize=4096)
def _compile(cron: str) -> _Spec:
    """Compile a canonical crontab that has been validated (or a shorthand's equivalent)."""
    fields = cron.split(" ")
    values = [_field_values(spec, text) for spec, text in zip(_FIELDS, fields, strict=True)]
    return _Spec(
        *values,
        day_and=fields[2][0] == "*" or fields[4][0] == "*",
        wildcard=fields[0][0] == "*" or fields[1][0] == "*",
    )


def _check_can_fire(
    text: str, fields: list[str], days: frozenset[int], months: frozenset[int]
) -> None:
    """Reject a crontab under the AND day rule whose days exist in none of its months.

    Under the OR rule a restricted day-of-week always fires (every month has every weekday),
    and under AND every existing date falls on every weekday in some year, so this is the
    only way a valid crontab can never fire.
    """
    first_day = min(days)
    if first_day <= 29:
        return  # every month has 29 days in a leap year
    longest = max(_MONTH_DAYS[m] for m in months)
    if first_day <= longest:
        return
    raise InvalidScheduleError(
        f"invalid schedule {_quote(text)}: it can never fire: day-of-month field "
        f"{_quote(fields[2])} names no day that exists in month field {_quote(fields[3])} "
        f"(the longest of those months has {longest} days); choose days up to {longest} "
        "or other months"
    )


# The same few fields ("*", "0", "1-5") recur across crontabs.
@lru_cache(maxsize=1024)
def _field_values(spec: _Field, text: str) -> frozenset[int]:
    items = text.split(",")
    if "" in items:
        kept = ",".join(item for item in items if item)
        example = f', e.g. "{kept}"' if kept else ""
        raise _FieldError(f"has an empty list item; separate values with single commas{example}")
    values = frozenset().union(*[_item_values(spec, item) for item in items])
    if spec is _DAY_OF_WEEK and 7 in values:
        return values - {7} | {0}  # 7 is Sunday again, so that ranges like 5-7 (Fri-Sun) work
    return values


def _item_values(spec: _Field, item: str) -> range:
    match = _ITEM.fullmatch(item)
    if match is None:
        raise _FieldError(_malformed_problem(spec, item))
    star, start_text, end_text, step_text = match.groups()
    if star:
        first, last = spec.low, spec.high
    else:
        first = _value(spec, start_text)
        last = first if end_text is None else _value(spec, end_text)
    step = 1
    single = not star and end_text is None
    if step_text is not None:
        step = int(step_text)
        if step == 0:
            raise _FieldError("has a step of 0; a step is a whole number of at least 1")
        if single and step <= _INT_MAX - first:
            # cron reads "5/15" as a syntax error, not as "from 5 every 15"; say how to.
            raise _FieldError(
                f"has a step on a single value; to start at {start_text} and repeat every "
                f'{step}, write "{start_text}-{spec.high}/{step}"'
            )
    if last < first:
        step_suffix = "" if step_text is None else f"/{step_text}"
        raise _FieldError(_reversed_problem(spec, start_text, end_text, first, last, step_suffix))
    if step > _INT_MAX - first:
        # A step on a single value ("5/N") is read as counting from it to the field's end.
        end = spec.high if single else last
        first_text = str(first) if star else start_text
        raise _FieldError(_step_too_large_problem(item, first_text, first, end, step))
    return range(first, last + 1, step)


# cron reads each number into a C int and walks a range with "i += step" from its first
# value, so a step is only read as written while first + step fits in a 32-bit int: cronie
# truncates strtol's result ("*/4294967297" would be every minute) and a sum that overflows
# makes the line an error. Such steps are refused. Any smaller step is accepted as cron
# accepts it (cronie only warns when it exceeds the range): a step larger than its range
# keeps only the first value, so "*/90" in the minute field is minute 0.
_INT_MAX = 2**31 - 1


def _step_too_large_problem(item: str, first_text: str, first: int, last: int, step: int) -> str:
    start = "" if first == 0 else f" starting at {first_text}"
    return (
        f"has a step of {step}, which is too large for cron to read: cron counts in 32-bit "
        f"integers, so a step{start} is at most {_INT_MAX - first}; any step of "
        f"{last - first + 1} or more keeps only the first value, so write {_quote(first_text)} "
        f"instead of {_quote(item)}"
    )


def _malformed_problem(spec: _Field, item: str) -> str:
    """Why an item does not match the grammar of ``_ITEM``."""
    for ch in item:
        if not (ch.isascii() and (ch.isalnum() or ch in "*-/")):
            return _bad_char_problem(spec, ch)
    if item.count("/") > 1:
        return f'has more than one "/" in {_quote(item)}; a step is "*/5" or "1-30/5"'
    base, slash, step_text = item.partition("/")
    if base.count("-") > 1:
        return (
            f'has {_quote(item)}, which is not a range: a range is two values joined by one "-", '
            'e.g. "1-5"'
        )
    if "*" in base and base != "*":
        return 'has "*" inside a range or value; write "*" alone or a range such as "1-5"'
    if not base:
        return 'has "/" with nothing before it; a step follows "*" or a range, e.g. "*/5"'
    if base.startswith("-") or base.endswith("-"):
        return (
            f'has {_quote(item)}: a range needs a value on both sides of "-" and values '
            f"cannot be negative; {spec.name} values are {spec.allowed}"
        )
    if not step_text:
        return f'has "/" with no step after it; write e.g. "{base}/2"'
    return f"has step {_quote(step_text)}; a step is a whole number such as 5"


def _reversed_problem(
    spec: _Field, start_text: str, end_text: str, first: int, last: int, step_suffix: str
) -> str:
    if spec is _DAY_OF_WEEK and last == 0:
        return (
            f'is a reversed range (Sunday is 0 here); write "{first}-7{step_suffix}" to end on '
            "Sunday"
        )
    swapped = f"{end_text}-{start_text}{step_suffix}"
    # Splitting a wrapping range in two is only exact without a step.
    wrap = "" if step_suffix else f', or "{start_text}-{spec.high},{spec.low}-{end_text}" to wrap'
    return (
        f"is a reversed range; ranges do not wrap around: write the smaller value first, "
        f'e.g. "{swapped}"{wrap}'
    )


def _bad_char_problem(spec: _Field, ch: str) -> str:
    if ch in _NON_STANDARD:
        return f'uses "{ch}", which {_NON_STANDARD[ch]}'
    if ch.isdigit() or ch.isnumeric():
        return f"contains {_describe_char(ch)}, which is not an ASCII digit; write digits 0-9"
    if unicodedata.category(ch) == "Pd":
        return f'contains {_describe_char(ch)}; ranges use the ASCII hyphen "-", e.g. "1-5"'
    names = ", month and weekday names" if spec.names else ""
    return f'contains {_describe_char(ch)}; a field holds numbers{names}, and "*", ",", "-" and "/"'


def _value(spec: _Field, token: str) -> int:
    if token.isdigit():
        value = int(token)
        if not spec.low <= value <= spec.high:
            raise _FieldError(f"has {token}, which is out of range: use {spec.allowed}")
        return value
    upper = token.upper()
    if upper in spec.names:
        return spec.low + spec.names.index(upper)
    if spec in (_DAY_OF_MONTH, _DAY_OF_WEEK) and _LAST_OR_WEEKDAY.fullmatch(upper):
        raise _FieldError(
            f'uses {_quote(token)}: "L" and "W" are extensions that cron does not support; '
            f"use {spec.allowed}"
        )
    raise _FieldError(f"has {_quote(token)}, which is not a {spec.unit}: use {spec.allowed}")


# -- Time zones ------------------------------------------------------------------------------

# Abbreviations name an offset, not a place, and several places share one (IST is India,
# Ireland and Israel; CST is Chicago and China), so they are refused with a zone that uses
# them as the hint. tzdata's legacy keys such as "EST5EDT" are refused alike.
_ABBREVIATION_HINTS = {
    abbreviation: zone
    for zone, abbreviations in {
        "America/New_York": "EST EDT ET EST5EDT",
        "America/Chicago": "CST CDT CT CST6CDT",
        "America/Denver": "MST MDT MT MST7MDT",
        "America/Los_Angeles": "PST PDT PT PST8PDT",
        "America/Anchorage": "AKST AKDT",
        "Pacific/Honolulu": "HST",
        "America/Halifax": "AST ADT",
        "America/St_Johns": "NST NDT",
        "America/Sao_Paulo": "BRT",
        "Europe/London": "GMT BST WET WEST",
        "Europe/Berlin": "CET CEST MET MEST",
        "Europe/Athens": "EET EEST",
        "Europe/Moscow": "MSK",
        "Africa/Johannesburg": "SAST",
        "Asia/Kolkata": "IST",
        "Asia/Tokyo": "JST",
        "Asia/Seoul": "KST",
        "Asia/Singapore": "SGT",
        "Asia/Hong_Kong": "HKT",
        "Australia/Sydney": "AEST AEDT",
        "Australia/Adelaide": "ACST ACDT",
        "Australia/Perth": "AWST",
        "Pacific/Auckland": "NZST NZDT",
    }.items()
    for abbreviation in abbreviations.split()
}
_UTC_ALIASES = {"GMT", "GMT0", "GMT+0", "GMT-0", "GREENWICH", "UCT", "UNIVERSAL", "Z", "ZULU"}
_ZONE_EXAMPLE = 'an IANA name such as "Europe/Berlin" or "America/New_York"'


def check_timezone(name: object) -> str:
    """A time zone name as parse() reads it ("UTC", or an IANA Area/Location name); raises
    InvalidScheduleError saying what to write instead."""
    if not isinstance(name, str):
        raise InvalidScheduleError(
            f"a time zone is a string, {_ZONE_EXAMPLE}, not {type(name).__name__}"
        )
    if name != "UTC":
        _zone(name)
    return name


@lru_cache(maxsize=1)
def _installed_zones() -> frozenset[str]:
    return frozenset(available_timezones())


@lru_cache(maxsize=1024)
def _zone(name: str) -> ZoneInfo:
    """The zone of an Area/Location name of the installed zone data ("UTC" needs none)."""
    if "/" not in name or name not in _installed_zones():
        raise InvalidScheduleError(_zone_problem(name))
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError) as error:  # listed, but unreadable
        raise InvalidScheduleError(
            f"the data of time zone {_quote(name)} cannot be read on this machine ({error}); "
            "reinstall the tzdata package"
        ) from None


def _zone_problem(name: str) -> str:
    if not name.strip():
        return f"the time zone is empty: write {_ZONE_EXAMPLE}, or leave it out for UTC"
    if not _installed_zones():
        return (
            f"time zone {_quote(name)} cannot be used: this machine has no time zone data; "
            'install it with "pip install tzdata" (or the system\'s tzdata package)'
        )
    upper = name.strip().upper()
    if upper in _UTC_ALIASES:
        return f'{_quote(name)} is not accepted as a time zone: write "UTC"'
    if upper in _ABBREVIATION_HINTS:
        kind = "an abbreviation" if upper.isalpha() else "a legacy name"
        return (
            f"{_quote(name)} is {kind}, not a time zone: use an IANA name such as "
            f"{_quote(_ABBREVIATION_HINTS[upper])}"
        )
    suggestion = _closest_zone(name)
    if suggestion:
        return f"unknown time zone {_quote(name)}: did you mean {_quote(suggestion)}?"
    if "/" not in name:  # "Japan", "Factory", "localtime"
        return f"{_quote(name)} is not an Area/Location time zone name: use {_ZONE_EXAMPLE}"
    return f"unknown time zone {_quote(name)}: use {_ZONE_EXAMPLE}"


def _closest_zone(name: str) -> str | None:
    """The accepted name closest to a misspelt one, matching case-insensitively; a bare place
    ("berlin") is matched against the places of the names ("Europe/Berlin")."""
    key = name.strip().replace(" ", "_").lower()
    if len(key) > 64:  # not a misspelt zone; spare difflib
        return None
    zones = sorted(zone for zone in _installed_zones() if "/" in zone) + ["UTC"]
    by_key = {zone.lower(): zone for zone in zones}
    if key in by_key:
        return by_key[key]
    if "/" not in key:
        # Several names share a place ("Canada/Eastern", "US/Eastern"): the first one wins.
        by_key = {zone.rpartition("/")[2].lower(): zone for zone in reversed(zones)}
    close = difflib.get_close_matches(key, by_key, n=1, cutoff=0.8)
    return by_key[close[0]] if close else None


# -- Fire times ------------------------------------------------------------------------------


@lru_cache(maxsize=2048)
def _month_shape(year: int, month: int) -> tuple[int, int]:
    """Weekday of the 1st (0 = Sunday, as in cron) and number of days of a month."""
    monday_based, days = calendar.monthrange(year, month)
    return (monday_based + 1) % 7, days


@lru_cache(maxsize=1024)
def _next_table(allowed: frozenset[int], size: int) -> tuple[int, ...]:
    """table[i] = the smallest allowed value >= i, or -1; one extra slot absorbs carries."""
    table = [-1] * (size + 1)
    following = -1
    for value in range(size - 1, -1, -1):
        if value in allowed:
            following = value
        table[value] = following
    return tuple(table)


# Days of a month as bit masks (bit d is day d). _SAME_WEEKDAY[k] holds the days k+1, k+8, ...
# which share a weekday; _FIRST_DAYS[n] holds days 1 to n.
_SAME_WEEKDAY = tuple(sum(1 << day for day in range(k + 1, 32, 7)) for k in range(7))
_FIRST_DAYS = tuple((1 << (n + 1)) - 2 for n in range(32))


class _Spec:
    """A crontab compiled to lookup tables, so a fire time is found by jumping field by field.

    The tables (and, for days, bit masks) map a candidate value to the next allowed one, which
    replaces both minute-by-minute stepping and datetime arithmetic in the search.
    """

    __slots__ = (
        "minutes",
        "hours",
        "days",
        "months",
        "weekdays",
        "day_and",
        "wildcard",
        "_next_minute",
        "_next_hour",
        "_next_month",
        "_first_month",
        "_day_bits",
        "_day_masks",
    )

    def __init__(
        self,
        minutes: frozenset[int],
        hours: frozenset[int],
        days: frozenset[int],
        months: frozenset[int],
        weekdays: frozenset[int],
        *,
        day_and: bool,
        wildcard: bool,
    ) -> None:
        self.minutes, self.hours, self.days, self.months = minutes, hours, days, months
        self.weekdays, self.day_and = weekdays, day_and
        # Cron's "wildcard" jobs (minute or hour field starting with "*") follow the wall
        # clock through clock changes; the others are "fixed-time" jobs (see the module doc).
        self.wildcard = wildcard
        self._next_minute = _next_table(minutes, 60)
        self._next_hour = _next_table(hours, 24)
        self._next_month = _next_table(months, 13)
        self._first_month = min(months)
        self._day_bits = sum(1 << day for day in days)
        # Matching days depend only on the month's first weekday and length: 7 x 4 shapes,
        # filled in on first use. Two threads filling one in race harmlessly (same value).
        self._day_masks: dict[tuple[int, int], int] = {}

    def _day_mask(self, year: int, month: int) -> int:
        """The days of this month that match, under cron's day rule, as a bit mask."""
        shape = _month_shape(year, month)
        mask = self._day_masks.get(shape)
        if mask is None:
            first_weekday, length = shape
            on_weekdays = 0
            for weekday in self.weekdays:
                on_weekdays |= _SAME_WEEKDAY[(weekday - first_weekday) % 7]
            if self.day_and:
                mask = self._day_bits & on_weekdays & _FIRST_DAYS[length]
            else:
                mask = (self._day_bits | on_weekdays) & _FIRST_DAYS[length]
            self._day_masks[shape] = mask
        return mask

    def first_from(
        self, year: int, month: int, day: int, hour: int, minute: int
    ) -> tuple[int, int, int, int, int] | None:
        """The first matching minute at or after the given one, or None after year 9999.

        ``minute`` may be 60 (one past the hour); each step below carries into the next
        larger field when a table has no value left:
        1. month: jump to the next allowed month, resetting day, hour and minute;
        2. day: jump to the next matching day of that month, or go to the next month;
        3. hour: jump to the next allowed hour, or go to the next day;
        4. minute: jump to the next allowed minute, or go to the next hour.
        """
        next_minute, next_hour, next_month = self._next_minute, self._next_hour, self._next_month
        while True:
            allowed_month = next_month[month]
            if allowed_month != month:
                if allowed_month < 0:
                    year += 1
                    if year > _LAST_YEAR:
                        return None
                    allowed_month = self._first_month
                month, day, hour, minute = allowed_month, 1, 0, 0
            days_left = self._day_mask(year, month) >> day
            if not days_left & 1:
                if not days_left:
                    month, day, hour, minute = month + 1, 1, 0, 0
                    continue
                # The lowest set bit is the next matching day.
                day, hour, minute = day + (days_left & -days_left).bit_length() - 1, 0, 0
            allowed_hour = next_hour[hour]
            if allowed_hour != hour:
                if allowed_hour < 0:
                    day, hour, minute = day + 1, 0, 0
                    continue
                hour, minute = allowed_hour, 0
            allowed_minute = next_minute[minute]
            if allowed_minute < 0:
                hour, minute = hour + 1, 0
                continue
            return year, month, day, hour, allowed_minute


def _utc_minute(dt: datetime) -> tuple[int, int, int, int, int]:
    if type(dt) is not datetime or dt.tzinfo is not UTC:
        dt = _aware(dt).astimezone(UTC)
    return dt.year, dt.month, dt.day, dt.hour, dt.minute


def _aware(dt: datetime) -> datetime:
    if not isinstance(dt, datetime):
        raise TypeError(f"expected a timezone-aware datetime, not {type(dt).__name__}")
    if dt.tzinfo is None or dt.utcoffset() is None:
        raise ValueError(
            f"naive datetime {dt.isoformat()}: pass a timezone-aware datetime, e.g. "
            "datetime.now(timezone.utc)"
        )
    return dt


def _fire_times(
    spec: _Spec, year: int, month: int, day: int, hour: int, minute: int
) -> Iterator[datetime]:
    first_from = spec.first_from
    while True:
        found = first_from(year, month, day, hour, minute + 1)
        if found is None:
            return
        year, month, day, hour, minute = found
        yield datetime(year, month, day, hour, minute, tzinfo=UTC)


_ONE_MINUTE = timedelta(minutes=1)


def _next_in_zone(
    spec: _Spec, zone: ZoneInfo, after: datetime, events: list[_Event] | None = None
) -> datetime | None:
    """The first fire time strictly after ``after`` of a crontab read on ``zone``'s wall clock,
    or None past the year 9999. ``events`` collects what clock changes did to it (see _Event).

    The search runs on wall-clock minutes with ``first_from``; each match is then placed in
    time. A match that the clock shows once is one instant. One that it shows twice (it went
    back) runs the first time, and a wildcard job's runs the second time too. One that it
    skips (it went forward) runs at the jump for a fixed-time job; a wildcard job skips it.
    """
    try:
        local = after.astimezone(zone)
        start = (local.year, local.month, local.day, local.hour, local.minute + 1)
        if spec.wildcard and not local.fold:
            start = _wildcard_start(spec, zone, local, start)
        while True:
            found = spec.first_from(*start)
            if found is None:
                return None
            wall = datetime(*found)
            offset = zone.utcoffset(wall)  # at the first pass, or before a jump over wall
            second_offset = zone.utcoffset(wall.replace(fold=1))
            at = datetime(*found, tzinfo=UTC) - offset
            if offset == second_offset:
                return at
            if offset > second_offset:  # the clock went back: wall happens twice
                if at <= after:  # after is in the second pass
                    if not spec.wildcard:
                        start = (*found[:4], found[4] + 1)  # it ran at the first pass
                        continue
                    at += offset - second_offset
                if events is not None:
                    events.append(("twice", wall))
                return at
            # The clock jumped over wall: read with the offset after the jump, wall is an
            # instant before it, and read with the offset before, one after it.
            jump = _clock_change(zone, datetime(*found, tzinfo=UTC) - second_offset, at)
            if not spec.wildcard:
                if events is not None:
                    events.append(("moved", wall))
                return jump
            if events is not None:
                events.append(("skipped", jump))
            start = _minute_of(jump.astimezone(zone))
    except OverflowError:  # beyond what datetime can hold, in UTC or in the zone
        return None


def _wildcard_start(
    spec: _Spec, zone: ZoneInfo, local: datetime, start: tuple[int, int, int, int, int]
) -> tuple[int, int, int, int, int]:
    """Where a wildcard job's search starts after ``local``, a first-pass reading (fold 0).

    In the first pass of a time that happens twice, the next run is in the rest of the first
    pass or else in the second pass, which starts earlier on the wall clock.
    """
    repeat = local.utcoffset() - local.replace(fold=1).utcoffset()
    if not repeat:  # local happens once
        return start
    minute = local.replace(second=0, microsecond=0).astimezone(UTC)
    jump = _clock_change(zone, minute, minute + repeat)
    first_pass_end = (jump + local.utcoffset()).replace(tzinfo=None)
    found = spec.first_from(*start)
    if found is not None and datetime(*found) < first_pass_end:
        return start
    return _minute_of(jump.astimezone(zone))


def _minute_of(dt: datetime) -> tuple[int, int, int, int, int]:
    return dt.year, dt.month, dt.day, dt.hour, dt.minute


def _clock_change(zone: ZoneInfo, before: datetime, after: datetime) -> datetime:
    """The instant in (before, after] at which ``zone`` changes its clock: the first whole
    minute whose offset differs from ``before``'s. Both are UTC datetimes on whole minutes,
    with one change between them."""
    offset = before.astimezone(zone).utcoffset()
    low, high = 0, (after - before) // _ONE_MINUTE  # offset unchanged at low, changed at high
    while high - low > 1:
        middle = (low + high) // 2
        if (before + middle * _ONE_MINUTE).astimezone(zone).utcoffset() == offset:
            low = middle
        else:
            high = middle
    return before + high * _ONE_MINUTE


def _zoned_fire_times(spec: _Spec, zone: ZoneInfo, after: datetime) -> Iterator[datetime]:
    while (after := _next_in_zone(spec, zone, after)) is not None:
        yield after


# What a clock change did to a fire time, for its note: ("twice", wall), the matching wall
# time happens twice; ("moved", wall), a fixed-time job's skipped wall time runs at the jump,
# which is the fire time; ("skipped", jump), a wildcard job's runs in the time skipped at
# jump were dropped on the way.
_Event = tuple[str, datetime]


@dataclass(frozen=True, slots=True)
class Fire:
    """A fire time of a preview: ``at`` in UTC, ``local`` the same instant on the schedule's
    clock, and ``note`` saying how a clock change moved, merged or repeated it, else None."""

    at: datetime
    local: datetime
    note: str | None


@dataclass(frozen=True, slots=True)
class Schedule:
    """A parsed schedule. Build it with ``parse()``; two schedules are equal when their
    canonical crontabs and time zones are, whatever the spelling (``"10m"`` equals
    ``"*/10 * * * *"``)."""

    expr: str = field(compare=False)
    cron: str
    timezone: str  # the IANA name, "UTC" for UTC
    _spec: _Spec = field(compare=False, repr=False)
    _zone: ZoneInfo | None = field(compare=False, repr=False)  # None for UTC: the fast path

    def next_after(self, dt: datetime) -> datetime:
        """The first fire time strictly after the timezone-aware ``dt``, as an aware UTC
        datetime on a whole minute. Raises ``ValueError`` for a naive ``dt``, or when the
        next fire time would be after the year 9999."""
        if self._zone is None:
            # Fire times are whole minutes, so the first one strictly after dt is at or after
            # the start of the following minute, whatever dt's seconds.
            year, month, day, hour, minute = _utc_minute(dt)
            found = self._spec.first_from(year, month, day, hour, minute + 1)
            if found is not None:
                return datetime(*found, tzinfo=UTC)
        else:
            fire_time = _next_in_zone(self._spec, self._zone, _aware(dt))
            if fire_time is not None:
                return fire_time
        raise ValueError(f"{self.cron!r} has no fire time after {dt.isoformat()}")

    def fires_at(self, moment: datetime) -> bool:
        """Whether the timezone-aware ``moment`` is one of the schedule's fire times (a whole
        minute the schedule fires at, through clock changes as ``next_after`` reads them).
        Raises as ``next_after`` does."""
        return self.next_after(moment - _ONE_MINUTE) == moment

    def iter_after(self, dt: datetime) -> Iterator[datetime]:
        """Successive fire times strictly after ``dt`` (aware UTC datetimes), in order.
        Raises ``ValueError`` for a naive ``dt`` at once, not at the first ``next()``."""
        if self._zone is None:
            return _fire_times(self._spec, *_utc_minute(dt))
        return _zoned_fire_times(self._spec, self._zone, _aware(dt))

    def preview(self, after: datetime, count: int) -> list[Fire]:
        """The next ``count`` fire times after ``after``, each with a note when a clock change
        moved, merged or repeated it."""
        if self._zone is None:
            return [Fire(at, at, None) for at in islice(self.iter_after(after), count)]
        return list(islice(_noted_fires(self._spec, self._zone, _aware(after)), count))

    def describe(self) -> str:
        """The schedule in plain English, with times on the schedule's clock."""
        if self._zone is None:
            return _describe(self._spec, " UTC")
        return f"{_describe(self._spec, '')}, {self.timezone} time"


def _noted_fires(spec: _Spec, zone: ZoneInfo, after: datetime) -> Iterator[Fire]:
    while True:
        events: list[_Event] = []
        at = _next_in_zone(spec, zone, after, events)
        if at is None:
            return
        notes = [_clock_change_note(spec, zone, at, *event) for event in events]
        yield Fire(at, at.astimezone(zone), "; ".join(notes) or None)
        after = at


def _clock_change_note(spec: _Spec, zone: ZoneInfo, at: datetime, kind: str, when: datetime) -> str:
    if kind == "skipped":
        span, day = _changed_span(zone, when)
        return f"{span} does not exist on {day}: runs in it are skipped"
    wall = when
    if kind == "twice":
        first = wall.replace(tzinfo=zone)
        if not spec.wildcard:
            return (
                f"{_clock(wall.hour, wall.minute)} happens twice on {_day(wall)}: runs once, "
                f"at the first ({first.tzname()})"
            )
        second = first.replace(fold=1).astimezone(UTC)
        span, day = _changed_span(zone, _clock_change(zone, first.astimezone(UTC), second))
        return f"{span} happens twice on {day}: runs in both"
    # Moved: a fixed-time job's matches from wall to the jump's wall time run once, at the jump.
    resume = at.astimezone(zone).replace(tzinfo=None)
    matches = []
    found = spec.first_from(wall.year, wall.month, wall.day, wall.hour, wall.minute)
    while found is not None and datetime(*found) <= resume:
        matches.append(datetime(*found))
        found = spec.first_from(*found[:4], found[4] + 1)
    skipped = [_clock(match.hour, match.minute) for match in matches if match < resume]
    runs_at = _clock(resume.hour, resume.minute)
    if len(matches) == 1:
        return f"{skipped[0]} does not exist on {_day(wall)}: runs at {runs_at}"
    listed = _join(skipped) if len(skipped) <= 3 else f"{skipped[0]}–{skipped[-1]}"
    verb = "do" if 1 < len(skipped) <= 3 else "does"
    return f"{listed} {verb} not exist on {_day(wall)}: runs once, at {runs_at}"


def _changed_span(zone: ZoneInfo, jump: datetime) -> tuple[str, str]:
    """The wall times that the clock change at ``jump`` skips or repeats ("02:00–02:59"),
    and their day."""
    offsets = ((jump - _ONE_MINUTE).astimezone(zone).utcoffset(), jump.astimezone(zone).utcoffset())
    first = (jump + min(offsets)).replace(tzinfo=None)
    last = (jump + max(offsets) - _ONE_MINUTE).replace(tzinfo=None)
    return f"{_clock(first.hour, first.minute)}–{_clock(last.hour, last.minute)}", _day(first)


def _day(wall: datetime) -> str:
    return f"{wall.day} {_MONTH_WORDS[wall.month - 1]}"


# -- Describing ------------------------------------------------------------------------------


def _ordinal(n: int) -> str:
    suffix = "th" if 11 <= n % 100 <= 13 else {1: "st", 2: "nd", 3: "rd"}.get(n % 10, "th")
    return f"{n}{suffix}"


def _join(words: list[str], conjunction: str = "and") -> str:
    if len(words) == 1:
        return words[0]
    return f"{', '.join(words[:-1])} {conjunction} {words[-1]}"


def _runs(values: tuple[int, ...]) -> list[tuple[int, int]]:
    """Consecutive values grouped as (first, last) runs."""
    runs: list[tuple[int, int]] = []
    for value in values:
        if runs and runs[-1][1] == value - 1:
            runs[-1] = (runs[-1][0], value)
        else:
            runs.append((value, value))
    return runs


def _listing(
    values: tuple[int, ...], word: Callable[[int], str] = str, conjunction: str = "and"
) -> str:
    parts: list[str] = []
    for first, last in _runs(values):
        if last - first >= 2:
            parts.append(f"{word(first)} through {word(last)}")
        else:
            parts.extend(word(v) for v in range(first, last + 1))
    return _join(parts, conjunction)


def _progression(values: tuple[int, ...]) -> int | None:
    """The common step when values (at least three) are evenly spaced, else None."""
    if len(values) < 3:
        return None
    step = values[1] - values[0]
    if all(b - a == step for a, b in pairwise(values)):
        return step
    return None


def _even_step(values: tuple[int, ...], size: int) -> int | None:
    """n when the values are exactly 0, n, 2n, ... and n divides the field: every n units."""
    if len(values) < 2 or values[0] != 0:
        return None
    step = values[1]
    if size % step == 0 and values == tuple(range(0, size, step)):
        return step
    return None


def _clock(hour: int, minute: int) -> str:
    return f"{hour:02d}:{minute:02d}"


def _count_part(values: tuple[int, ...], unit: str, size: int) -> str:
    """Field-by-field wording: "every 7th minute from 0 through 56", "hours 9 and 17"."""
    if len(values) == size:
        return f"every {unit}"
    if len(values) == 1:
        return f"{unit} {values[0]}"
    step = _even_step(values, size)
    if step:
        return f"every {_ordinal(step)} {unit}"
    step = _progression(values)
    if step:
        every = f"every {unit}" if step == 1 else f"every {_ordinal(step)} {unit}"
        return f"{every} from {values[0]} through {values[-1]}"
    return f"{unit}s {_listing(values)}"


def _time_phrase(minutes: tuple[int, ...], hours: tuple[int, ...], utc: str) -> tuple[str, bool]:
    """Words for the time of day, and whether they are clock times ("at 02:00 UTC"); ``utc``
    follows clock times: " UTC", or "" when the zone is named at the end instead."""
    minute_step = _even_step(minutes, 60)
    if len(hours) == 24:
        if minute_step == 1:
            return "every minute", False
        if minute_step:
            return f"every {minute_step} minutes", False
        if minutes == (0,):
            return "every hour, on the hour", False
        if len(minutes) == 1:
            return f"every hour at minute {minutes[0]}", False
        return f"at {_count_part(minutes, 'minute', 60)} past every hour", False
    if len(minutes) * len(hours) <= 6:
        times = [_clock(h, m) for h in hours for m in minutes]
        return f"at {_join(times)}{utc}", True
    hour_step = _progression(hours)
    if len(minutes) == 1:
        minute = minutes[0]
        at = ", on the hour" if minute == 0 else f" at minute {minute}"
        even = _even_step(hours, 24)
        if even:
            clocks = [_clock(h, minute) for h in hours]
            listed = (
                _join(clocks) if len(clocks) <= 6 else f"{clocks[0]}, {clocks[1]}, …, {clocks[-1]}"
            )
            return f"every {even} hours{at} ({listed}{utc})", False
        if hour_step:
            every = "every hour" if hour_step == 1 else f"every {hour_step} hours"
            first, last = _clock(hours[0], minute), _clock(hours[-1], minute)
            return f"{every} from {first} through {last}{utc}", False
    if minute_step and hours[-1] - hours[0] == len(hours) - 1:  # one run of hours
        every = "every minute" if minute_step == 1 else f"every {minute_step} minutes"
        first, last = _clock(hours[0], 0), _clock(hours[-1], minutes[-1])
        return f"{every} from {first} through {last}{utc}", False
    minute_part = _count_part(minutes, "minute", 60)
    return f"at {minute_part} past {_count_part(hours, 'hour', 24)}{utc}", False


def _weekday_key(weekday: int) -> int:
    return (weekday + 6) % 7  # Monday first, so that Friday through Sunday reads as a run


def _weekday_listing(weekdays: tuple[int, ...], plural: bool, conjunction: str = "and") -> str:
    ordered = tuple(sorted(_weekday_key(d) for d in weekdays))
    suffix = "s" if plural else ""
    parts: list[str] = []
    for first, last in _runs(ordered):
        if last - first >= 2:
            parts.append(f"{_DAY_WORDS[(first + 1) % 7]} through {_DAY_WORDS[(last + 1) % 7]}")
        else:
            parts.extend(_DAY_WORDS[(k + 1) % 7] + suffix for k in range(first, last + 1))
    return _join(parts, conjunction)


def _days_of_month(days: tuple[int, ...]) -> str:
    if days == tuple(range(1, 32, 2)):
        return "odd-numbered days of the month"
    if days == tuple(range(2, 31, 2)):
        return "even-numbered days of the month"
    if len(days) == 1:
        return f"day {days[0]} of the month"
    step = _progression(days)
    if step and step > 1:
        return f"every {_ordinal(step)} day of the month from {days[0]} through {days[-1]}"
    return f"days {_listing(days)} of the month"


def _describe(spec: _Spec, utc: str) -> str:
    time, is_clock = _time_phrase(tuple(sorted(spec.minutes)), tuple(sorted(spec.hours)), utc)
    all_months, all_weekdays = tuple(sorted(spec.months)), tuple(sorted(spec.weekdays))
    months = ""
    if len(all_months) < 12:
        months = _listing(all_months, lambda m: _MONTH_WORDS[m - 1])
    # Days that no chosen month has ("0 0 30 2 1": February 30) can never match, so they are
    # left out rather than described.
    longest = max(_MONTH_DAYS[m] for m in all_months)
    days = tuple(sorted(d for d in spec.days if d <= longest))
    any_day, any_weekday = days == tuple(range(1, longest + 1)), len(all_weekdays) == 7
    if spec.day_and:
        by_day, by_weekday = not any_day, not any_weekday
    else:
        # Under OR, a field that matches every day makes the other one irrelevant, and an
        # empty one leaves the other alone.
        by_day = not (any_day or any_weekday) and bool(days)
        by_weekday = not (any_day or any_weekday)
    if not by_day:
        weekdays = _weekday_listing(all_weekdays, plural=False) if by_weekday else "day"
        if is_clock:
            return f"every {weekdays}{f' in {months}' if months else ''} {time}"
        days = f"on {_weekday_listing(all_weekdays, plural=True)}" if by_weekday else ""
        return _sentence(time, days, months)
    if len(days) == 1 and len(all_months) == 1 and not (by_weekday and not spec.day_and):
        day_words, months = f"{_MONTH_WORDS[all_months[0] - 1]} {days[0]}", ""
    else:
        day_words = _days_of_month(days)
    if not by_weekday:
        return _sentence(time, f"on {day_words}", months)
    if spec.day_and:
        weekdays = _weekday_listing(all_weekdays, plural=False, conjunction="or")
        article = "" if " through " in weekdays else "a "
        return _sentence(time, f"on {day_words} when that day is {article}{weekdays}", months)
    weekdays = _weekday_listing(all_weekdays, plural=True)
    return _sentence(time, f"on {day_words} and on {weekdays}", months)


def _sentence(time: str, days: str, months: str) -> str:
    # "every hour, on the hour, on Mondays" needs commas that "every minute on Mondays" does
    # not; a two-part day condition takes one before the months so that they cover both parts.
    pause = ", " if "," in time or ")" in time else " "
    words = time
    if days:
        words += f"{pause}{days}"
    if months:
        words += f"{', ' if ' and on ' in days or ' when ' in days else pause}in {months}"
    return words
