"""The schedule contract (DESIGN.md §2), rule by rule.

Tables of crontabs and shorthands with their next fire times and their descriptions, and of
invalid schedules with what their error message must say. Times are UTC; "2025-01-01" is a
Wednesday.
"""

import dataclasses
import subprocess
import sys
from datetime import UTC, datetime, timedelta, timezone
from itertools import islice
from zoneinfo import ZoneInfo

import pytest

from chalkcompute.schedule import MAX_LENGTH, InvalidScheduleError, parse


def utc(text: str) -> datetime:
    return datetime.fromisoformat(text).replace(tzinfo=UTC)


FIRE_TIMES = [
    # Strictly after: a start on a fire time, or inside its minute, gives the next one.
    ("* * * * *", "2025-01-01 00:00", ["2025-01-01 00:01", "2025-01-01 00:02"]),
    ("* * * * *", "2025-01-01 00:00:59.999999", ["2025-01-01 00:01"]),
    ("0 * * * *", "2025-01-01 01:00", ["2025-01-01 02:00"]),
    ("0 * * * *", "2025-01-01 00:59:30", ["2025-01-01 01:00"]),
    ("*/10 * * * *", "2025-01-01 00:55", ["2025-01-01 01:00", "2025-01-01 01:10"]),
    # Rollover of hour, day, month and year.
    ("0 0 * * *", "2025-12-31 23:59:59", ["2026-01-01 00:00", "2026-01-02 00:00"]),
    ("59 23 31 12 *", "2025-12-31 23:59", ["2026-12-31 23:59", "2027-12-31 23:59"]),
    ("30 12 1 * *", "2024-12-15 00:00", ["2025-01-01 12:30", "2025-02-01 12:30"]),
    # Month ends skip the months that are too short, and February 29 waits for a leap year.
    (
        "0 0 31 * *",
        "2025-01-31 00:00",
        ["2025-03-31", "2025-05-31", "2025-07-31", "2025-08-31", "2025-10-31", "2025-12-31"],
    ),
    ("0 0 30 * *", "2025-01-30 00:00", ["2025-03-30"]),
    ("0 0 28-31 2 *", "2025-02-27 12:00", ["2025-02-28", "2026-02-28", "2027-02-28"]),
    ("0 0 29 2 *", "2025-01-01 00:00", ["2028-02-29", "2032-02-29"]),
    ("0 0 29 2 *", "2096-03-01 00:00", ["2104-02-29"]),  # 2100 is not a leap year
    # Day rule: OR when neither day field starts with "*"...
    ("0 0 13 * 5", "2025-01-01", ["2025-01-03", "2025-01-10", "2025-01-13", "2025-01-17"]),
    ("0 0 30 2 1", "2025-01-01", ["2025-02-03", "2025-02-10", "2025-02-17", "2025-02-24"]),
    ("0 0 1-31 * 1", "2025-01-01", ["2025-01-02", "2025-01-03"]),
    ("0 0 1,* * 1", "2025-01-01", ["2025-01-02", "2025-01-03"]),  # "*" is not the first char
    # ... and AND when either does, even with a step or a list after the "*".
    ("0 0 */2 * 1", "2025-01-01", ["2025-01-13", "2025-01-27", "2025-02-03", "2025-02-17"]),
    ("0 0 *,1 * 1", "2025-01-01", ["2025-01-06", "2025-01-13"]),
    ("0 0 13 * */1", "2025-01-01", ["2025-01-13", "2025-02-13"]),
    ("0 0 29 2 */7", "2025-01-01", ["2032-02-29", "2060-02-29"]),  # a Sunday February 29
    # Sunday is 0 or 7; names are case-insensitive and work in ranges, lists and steps.
    ("0 0 * * 0", "2025-01-01", ["2025-01-05", "2025-01-12"]),
    ("0 0 * * 7", "2025-01-01", ["2025-01-05", "2025-01-12"]),
    ("0 0 * * sun", "2025-01-01", ["2025-01-05", "2025-01-12"]),
    ("0 0 * * 5-7", "2025-01-01", ["2025-01-03", "2025-01-04", "2025-01-05", "2025-01-10"]),
    ("0 0 * * 1-7/2", "2025-01-01", ["2025-01-03", "2025-01-05", "2025-01-06", "2025-01-08"]),
    ("0 0 * * */2", "2025-01-01", ["2025-01-02", "2025-01-04", "2025-01-05", "2025-01-07"]),
    ("0 9 * * mon-FRI", "2025-01-03 09:00", ["2025-01-06 09:00", "2025-01-07 09:00"]),
    (
        "0 12 * JAN-MAR MON,FRI",
        "2025-03-28 12:00",
        ["2025-03-31 12:00", "2026-01-02 12:00", "2026-01-05 12:00"],
    ),
    ("0 0 1 jan,Jul *", "2025-01-01", ["2025-07-01", "2026-01-01"]),
    ("0 0 1 JAN-DEC/3 *", "2025-01-01", ["2025-04-01", "2025-07-01", "2025-10-01"]),
    # "a-a" and "a-a/n" are just a.
    ("5-5 * * * *", "2025-01-01 00:00", ["2025-01-01 00:05", "2025-01-01 01:05"]),
    ("5-5/10 * * * *", "2025-01-01 00:00", ["2025-01-01 00:05", "2025-01-01 01:05"]),
    ("0 0 * * 3-3", "2025-01-01", ["2025-01-08", "2025-01-15"]),
    ("0 0 1 6-6/2 *", "2025-01-01", ["2025-06-01", "2026-06-01"]),
    # A step takes every n-th value from the first; one larger than its range keeps the first.
    ("*/60 * * * *", "2025-01-01 00:00", ["2025-01-01 01:00", "2025-01-01 02:00"]),
    ("0 */24 * * *", "2025-01-01 00:00", ["2025-01-02 00:00"]),
    ("0 0 */31 * *", "2025-01-01", ["2025-02-01", "2025-03-01"]),
    ("10-20/15 * * * *", "2025-01-01 00:10", ["2025-01-01 01:10"]),
    # ... up to the largest step cron reads: the first value plus the step fits in an int32.
    ("*/2147483647 * * * *", "2025-01-01 00:00", ["2025-01-01 01:00"]),
    ("0 0 */2147483646 * *", "2025-01-01", ["2025-02-01", "2025-03-01"]),
    ("59-59/2147483588 * * * *", "2025-01-01 00:00", ["2025-01-01 00:59"]),
    (
        "1-30/7 * * * *",
        "2025-01-01 00:00",
        ["2025-01-01 00:01", "2025-01-01 00:08", "2025-01-01 00:15", "2025-01-01 00:22"]
        + ["2025-01-01 00:29", "2025-01-01 01:01"],
    ),
    # Aligned to the hour, so the last gap before it is shorter.
    ("*/7 * * * *", "2025-01-01 00:50", ["2025-01-01 00:56", "2025-01-01 01:00"]),
    # Blanks: any run of spaces and tabs separates fields; leading zeros are fine.
    ("\t0  0\t* *  * ", "2025-01-01", ["2025-01-02"]),
    ("00 09 * * *", "2025-01-01", ["2025-01-01 09:00"]),
]


@pytest.mark.parametrize(("expr", "after", "expected"), FIRE_TIMES)
def test_it_fires_at_the_expected_times(expr: str, after: str, expected: list[str]) -> None:
    schedule = parse(expr)

    assert list(islice(schedule.iter_after(utc(after)), len(expected))) == [
        utc(t) for t in expected
    ]
    assert schedule.next_after(utc(after)) == utc(expected[0])


SHORTHANDS = [
    ("1m", "* * * * *", "2025-01-01 00:00", ["2025-01-01 00:01", "2025-01-01 00:02"]),
    ("10m", "*/10 * * * *", "2025-01-01 00:55", ["2025-01-01 01:00", "2025-01-01 01:10"]),
    ("05m", "*/5 * * * *", "2025-01-01 00:00", ["2025-01-01 00:05"]),
    (
        "7m",
        "*/7 * * * *",
        "2025-01-01 00:50",
        ["2025-01-01 00:56", "2025-01-01 01:00", "2025-01-01 01:07"],
    ),
    ("60m", "0 * * * *", "2025-01-01 00:00", ["2025-01-01 01:00", "2025-01-01 02:00"]),
    ("1h", "0 * * * *", "2025-01-01 00:30", ["2025-01-01 01:00", "2025-01-01 02:00"]),
    (
        "6h",
        "0 */6 * * *",
        "2025-01-01 05:00",
        ["2025-01-01 06:00", "2025-01-01 12:00", "2025-01-01 18:00", "2025-01-02 00:00"],
    ),
    (
        "7h",
        "0 */7 * * *",
        "2025-01-01 14:00",
        ["2025-01-01 21:00", "2025-01-02 00:00", "2025-01-02 07:00"],
    ),
    ("24h", "0 0 * * *", "2025-01-01 00:00", ["2025-01-02 00:00", "2025-01-03 00:00"]),
    ("1d", "0 0 * * *", "2025-01-01 12:00", ["2025-01-02 00:00", "2025-01-03 00:00"]),
]


@pytest.mark.parametrize(("shorthand", "cron", "after", "expected"), SHORTHANDS)
def test_it_runs_a_shorthand_as_its_crontab(
    shorthand: str, cron: str, after: str, expected: list[str]
) -> None:
    schedule = parse(shorthand)

    assert schedule.cron == cron
    assert schedule.expr == shorthand
    assert schedule == parse(cron)
    assert list(islice(schedule.iter_after(utc(after)), len(expected))) == [
        utc(t) for t in expected
    ]


DESCRIPTIONS = [
    ("* * * * *", "every minute"),
    ("10m", "every 10 minutes"),
    ("*/30 * * * *", "every 30 minutes"),
    ("1h", "every hour, on the hour"),
    ("15 * * * *", "every hour at minute 15"),
    ("0,30 * * * *", "every 30 minutes"),
    ("0,20 * * * *", "at minutes 0 and 20 past every hour"),
    ("7m", "at every 7th minute from 0 through 56 past every hour"),
    ("0 2 * * *", "every day at 02:00 UTC"),
    ("1d", "every day at 00:00 UTC"),
    ("6h", "every day at 00:00, 06:00, 12:00 and 18:00 UTC"),
    ("2h", "every 2 hours, on the hour (00:00, 02:00, …, 22:00 UTC)"),
    ("30 */3 * * *", "every 3 hours at minute 30 (00:30, 03:30, …, 21:30 UTC)"),
    ("0 9-17 * * *", "every hour from 09:00 through 17:00 UTC"),
    ("0 1-23/2 * * *", "every 2 hours from 01:00 through 23:00 UTC"),
    ("0 */5 * * *", "every day at 00:00, 05:00, 10:00, 15:00 and 20:00 UTC"),
    ("* 9 * * *", "every minute from 09:00 through 09:59 UTC"),
    ("0 0 * * 0", "every Sunday at 00:00 UTC"),
    ("0 0 * * 7", "every Sunday at 00:00 UTC"),
    ("0 9 * * 1-5", "every Monday through Friday at 09:00 UTC"),
    ("0 10 * * 6,0", "every Saturday and Sunday at 10:00 UTC"),
    ("0 22 * * 5-7", "every Friday through Sunday at 22:00 UTC"),
    (
        "*/15 9-17 * * MON-FRI",
        "every 15 minutes from 09:00 through 17:45 UTC on Monday through Friday",
    ),
    ("* * * * 1", "every minute on Mondays"),
    ("0 * * * 1", "every hour, on the hour, on Mondays"),
    ("0 0 1 * *", "at 00:00 UTC on day 1 of the month"),
    ("0 0 1 1 *", "at 00:00 UTC on January 1"),
    ("0 0 29 2 *", "at 00:00 UTC on February 29"),
    ("0 0 1,15 * *", "at 00:00 UTC on days 1 and 15 of the month"),
    ("0 0 1 */3 *", "at 00:00 UTC on day 1 of the month in January, April, July and October"),
    ("0 0 */2 * *", "at 00:00 UTC on odd-numbered days of the month"),
    ("0 0 13 * 5", "at 00:00 UTC on day 13 of the month and on Fridays"),
    (
        "0 0 */2 * 1",
        "at 00:00 UTC on odd-numbered days of the month when that day is a Monday",
    ),
    ("0 0 29 2 */7", "at 00:00 UTC on February 29 when that day is a Sunday"),
    ("0 0 1-31 * 1", "every day at 00:00 UTC"),  # OR with a day field that matches every day
    ("0 0 30 2 1", "every Monday in February at 00:00 UTC"),  # February 30 never comes
    ("0 12 * JAN-MAR MON,FRI", "every Monday and Friday in January through March at 12:00 UTC"),
    ("15,45 */2 * * *", "at minutes 15 and 45 past every 2nd hour UTC"),
    (
        "5-55/10 8-18 * * *",
        "at every 10th minute from 5 through 55 past every hour from 8 through 18 UTC",
    ),
    ("0,30 9-11 * * *", "every day at 09:00, 09:30, 10:00, 10:30, 11:00 and 11:30 UTC"),
    ("1,2,3,10,20 * * * *", "at minutes 1 through 3, 10 and 20 past every hour"),
]


@pytest.mark.parametrize(("expr", "description"), DESCRIPTIONS)
def test_it_describes_the_schedule_in_words(expr: str, description: str) -> None:
    assert parse(expr).describe() == description


INVALID = [
    # Empty, too long, one line only.
    ("", ["empty", '"0 * * * *"', '"10m"']),
    (" \t ", ["empty"]),
    ("0 " * 101, [f"at most {MAX_LENGTH} characters"]),
    ("0 0\n* * *", ["line break", "spaces or tabs"]),
    ("0 0 * * *\n", ["line break"]),
    ("0 0 * * *\r", ["carriage return"]),
    ("0 0 * *\v*", ["vertical tab"]),
    ("0 0 * *\f*", ["form feed"]),
    ("0\u00a00 * * *", ["no-break space", "U+00A0", "spaces or tabs"]),
    # Field count, with what the five fields are.
    ("0 0 * *", ["exactly five fields", "minute hour day-of-month month day-of-week", "has 4"]),
    ("0 0 0 * * *", ["exactly five fields", "has 6", "seconds and years are not supported"]),
    ("0 0 0 1 1 * 2025", ["has 7", "seconds and years are not supported"]),
    ("*", ["exactly five fields", "has 1", "shorthand"]),
    # Values out of range name the field and its range.
    ("60 * * * *", ['minute field "60"', "out of range", "0-59"]),
    ("0 24 * * *", ['hour field "24"', "0-23"]),
    ("0 0 0 * *", ['day-of-month field "0"', "1-31"]),
    ("0 0 32 * *", ['day-of-month field "32"', "1-31"]),
    ("0 0 * 13 *", ['month field "13"', "1-12 or JAN-DEC"]),
    ("0 0 * 0 *", ['month field "0"', "1-12 or JAN-DEC"]),
    ("0 0 * * 8", ['day-of-week field "8"', "0-7 (0 and 7 are both Sunday) or SUN-SAT"]),
    ("0-60 * * * *", ['minute field "0-60"', "0-59"]),
    ("0 0 * JANUARY *", ['month field "JANUARY"', "not a month", "JAN-DEC"]),
    ("0 0 * * MONDAY", ['day-of-week field "MONDAY"', "not a weekday", "SUN-SAT"]),
    ("0 0 * * * MON", ["has 6"]),
    ("0 0 MON * *", ['day-of-month field "MON"', "1-31"]),
    # Reversed ranges: write the smaller value first, or wrap explicitly.
    ("5-1 * * * *", ['minute field "5-1"', "reversed range", '"1-5"', '"5-59,0-1"']),
    ("0 22-2 * * *", ['hour field "22-2"', '"2-22"', '"22-23,0-2"']),
    ("0 0 * NOV-FEB *", ['month field "NOV-FEB"', "reversed range", '"FEB-NOV"']),
    ("0 0 * * SAT-SUN", ['day-of-week field "SAT-SUN"', "reversed range", '"6-7"']),
    ("0 0 * * 5-0", ['day-of-week field "5-0"', '"5-7"']),
    ("0 0 * * 5-1/2", ['day-of-week field "5-1/2"', '"1-5/2"']),
    ("0 0 * * 6-0/2", ['day-of-week field "6-0/2"', '"6-7/2"']),
    # Steps: zero, absent, or on a single value.
    ("*/0 * * * *", ['minute field "*/0"', "step of 0", "at least 1"]),
    ("*/ * * * *", ['minute field "*/"', "no step", '"*/2"']),
    ("0 0 * * 1-5/", ['day-of-week field "1-5/"', "no step"]),
    ("5/15 * * * *", ['minute field "5/15"', "single value", '"5-59/15"']),
    ("0 0 * JAN/3 *", ['month field "JAN/3"', '"JAN-12/3"']),
    ("*/x * * * *", ['minute field "*/x"', "whole number"]),
    # Steps too large for cron to read (its numbers are 32-bit ints), with the equivalent.
    (
        "*/2147483648 * * * *",
        ['minute field "*/2147483648"', "too large", "at most 2147483647", 'write "0"'],
    ),
    (
        "0 0 */2147483647 * *",
        ['day-of-month field "*/2147483647"', "too large", "at most 2147483646", 'write "1"'],
    ),
    ("59-59/2147483589 * * * *", ['minute field "59-59/2147483589"', "at most 2147483588"]),
    ("*/4294967297 * * * *", ['minute field "*/4294967297"', "too large", 'write "0"']),
    (
        "0 0 * * MON-FRI/" + "9" * 30,
        ['day-of-week field "MON-FRI/999', "too large", "5 or more", 'write "MON" instead of'],
    ),
    ("0 0 * JAN-MAR/4294967296 *", ['month field "JAN-MAR/4294967296"', 'write "JAN"']),
    ("1,*/99999999999 * * * *", ['minute field "1,*/99999999999"', 'instead of "*/999']),
    ("5/99999999999 * * * *", ['minute field "5/99999999999"', "too large", 'write "5"']),
    # Huge values are out of range like any other.
    ("0-99999999999999999999 * * * *", ['minute field "0-999', "out of range", "0-59"]),
    ("1,2147483648 * * * *", ['minute field "1,2147483648"', "out of range", "0-59"]),
    ("0 0 * * 1-4294967297/2", ['day-of-week field "1-4294967297/2"', "out of range"]),
    # Non-standard extensions.
    ("0 0 L * *", ['day-of-month field "L"', "not support"]),
    ("0 0 15W * *", ['day-of-month field "15W"', "not support"]),
    ("0 0 LW * *", ['day-of-month field "LW"', "not support"]),
    ("0 0 * * 5L", ['day-of-week field "5L"', "not support"]),
    ("0 0 * * FRIL", ['day-of-week field "FRIL"', "not support"]),
    ("0 0 * * 5#3", ['day-of-week field "5#3"', '"#"', "not support"]),
    ("0 0 ? * MON", ['day-of-month field "?"', 'write "*"']),
    ("~ * * * *", ['minute field "~"', "random", "fixed value"]),
    ("0~30 * * * *", ['minute field "0~30"', "random"]),
    ("@daily", ["nicknames", 'write the crontab "0 0 * * *"']),
    ("@midnight", ['"0 0 * * *"']),
    ("@hourly", ['"0 * * * *"']),
    ("@weekly", ['"0 0 * * 0"']),
    ("@monthly", ['"0 0 1 * *"']),
    ("@yearly", ['"0 0 1 1 *"']),
    ("@ANNUALLY", ['"0 0 1 1 *"']),
    ("@reboot", ["nicknames", "five-field crontab"]),
    ("@every 5m", ["nicknames", "five-field crontab"]),
    ("H * * * *", ['minute field "H"', "0-59"]),
    # Junk.
    ("1-2-3 * * * *", ['minute field "1-2-3"', "not a range"]),
    ("*/5/2 * * * *", ['minute field "*/5/2"', 'more than one "/"']),
    ("+5 * * * *", ['minute field "+5"', '"+"', "numbers"]),
    ("-5 * * * *", ['minute field "-5"', "negative", "0-59"]),
    ("5- * * * *", ['minute field "5-"', "both sides"]),
    ("*-5 * * * *", ['minute field "*-5"', '"*" alone']),
    ("/5 * * * *", ['minute field "/5"', "nothing before it", '"*/5"']),
    ("** * * * *", ['minute field "**"', '"*" alone']),
    ("5* * * * *", ['minute field "5*"', '"*" alone']),
    ("1a * * * *", ['minute field "1a"', "not a minute"]),
    ("\uff15 * * * *", ['minute field "\uff15"', "not an ASCII digit", "0-9"]),
    ("\u0663 * * * *", ['minute field "\u0663"', "not an ASCII digit"]),
    ("1\u20135 * * * *", ['minute field "1\u20135"', 'ASCII hyphen "-"']),
    ("0 0 * * *\x00", ["control character"]),
    ("1,,2 * * * *", ['minute field "1,,2"', "empty list item", '"1,2"']),
    ("1, * * * *", ['minute field "1,"', "empty list item", '"1"']),
    (",1 * * * *", ['minute field ",1"', "empty list item"]),
    ("0 0 1,2, * *", ['day-of-month field "1,2,"', '"1,2"']),
    # Never fires: the days do not exist in the months (under the AND rule).
    ("0 0 30 2 *", ["never fire", 'day-of-month field "30"', 'month field "2"', "29 days"]),
    ("0 0 31 4,6,9,11 *", ["never fire", 'month field "4,6,9,11"', "30 days"]),
    ("0 0 30-31 FEB *", ["never fire", "29 days"]),
    ("0 0 31 2 */2", ["never fire"]),
    # Shorthands outside their rules say to write a crontab (with an example only when exact).
    ("90m", ["longer than 60 minutes", "write a crontab instead"]),
    ("61m", ["longer than 60 minutes", "write a crontab instead"]),
    ("120m", ['write "2h" or a crontab instead']),
    ("1440m", ['write "24h" or a crontab instead']),
    ("25h", ["longer than 24 hours", "write a crontab instead"]),
    ("48h", ["longer than 24 hours", "write a crontab instead"]),
    ("2d", ['the only day shorthand is "1d"', "write a crontab instead"]),
    ("0d", ["at least 1", "write a crontab instead"]),
    ("0m", ["at least 1", "write a crontab instead"]),
    ("0h", ["at least 1", "write a crontab instead"]),
    ("1h30m", ["compound", "write a crontab instead"]),
    ("1h 30m", ["compound", "write a crontab instead"]),
    ("1.5h", ["fractional", "write a crontab instead"]),
    ("10s", ["seconds are not supported", '"1m"', "write a crontab instead"]),
    ("1w", ["weeks", "write a crontab instead"]),
    ("10x", ['unit "x"', "write a crontab instead"]),
    ("10M", ["lowercase", '"10m"', "write a crontab instead"]),
    ("2H", ["lowercase", '"2h"', "write a crontab instead"]),
    ("10 m", ['no spaces: write "10m"', "write a crontab instead"]),
    ("m", ["needs a number", "write a crontab instead"]),
    ("10", ['no unit: write "10m" or "10h"', "write a crontab instead"]),
    ("45", ['no unit: write "45m"', "write a crontab instead"]),
]


@pytest.mark.parametrize(("expr", "fragments"), INVALID)
def test_it_rejects_an_invalid_schedule_saying_how_to_fix_it(
    expr: str, fragments: list[str]
) -> None:
    with pytest.raises(InvalidScheduleError) as caught:
        parse(expr)

    for fragment in fragments:
        assert fragment in str(caught.value)


def test_it_quotes_the_schedule_in_its_error_message() -> None:
    with pytest.raises(InvalidScheduleError, match=r'^invalid schedule "5-1 \* \* \* \*": '):
        parse("5-1 * * * *")


@pytest.mark.parametrize("value", [None, 5, b"0 0 * * *", ["0", "0", "*", "*", "*"]])
def test_it_rejects_a_schedule_that_is_not_a_string(value: object) -> None:
    with pytest.raises(InvalidScheduleError, match="must be a string"):
        parse(value)  # type: ignore[arg-type]


def test_it_is_a_value_error() -> None:
    assert issubclass(InvalidScheduleError, ValueError)


def test_it_accepts_a_schedule_of_the_maximum_length() -> None:
    padded = "0 0 * * *".ljust(MAX_LENGTH)

    assert parse(padded).cron == "0 0 * * *"
    with pytest.raises(InvalidScheduleError):
        parse(padded + " ")


def test_it_keeps_the_expression_and_normalises_the_crontab() -> None:
    schedule = parse("  0\t9  *  jan-mar  mon,Fri\t")

    assert schedule.expr == "0\t9  *  jan-mar  mon,Fri"
    assert schedule.cron == "0 9 * JAN-MAR MON,FRI"


def test_it_compares_schedules_by_their_crontab() -> None:
    assert parse("10m") == parse("*/10 * * * *") == parse(" */10  * * * * ")
    assert hash(parse("1d")) == hash(parse("0 0 * * *"))
    assert len({parse("60m"), parse("1h"), parse("0 * * * *")}) == 1
    assert parse("0 0 * * *") != parse("0 1 * * *")


def test_it_cannot_be_changed() -> None:
    schedule = parse("10m")

    with pytest.raises(dataclasses.FrozenInstanceError):
        schedule.cron = "* * * * *"  # type: ignore[misc]


def test_it_converts_an_aware_start_to_utc() -> None:
    paris = datetime(2025, 1, 1, 9, 30, tzinfo=ZoneInfo("Europe/Paris"))  # 08:30 UTC
    kolkata = datetime(2025, 1, 1, 0, 0, tzinfo=timezone(timedelta(hours=5, minutes=30)))

    assert parse("0 9 * * *").next_after(paris) == utc("2025-01-01 09:00")
    assert parse("0 0 * * *").next_after(kolkata) == utc("2025-01-01 00:00")


def test_it_ignores_daylight_saving_time() -> None:
    # 2025-03-30 is the night Paris moves its clocks; in UTC nothing happens.
    start = datetime(2025, 3, 30, 1, 30, tzinfo=ZoneInfo("Europe/Paris"))  # 00:30 UTC

    assert list(islice(parse("30 * * * *").iter_after(start), 3)) == [
        utc("2025-03-30 01:30"),
        utc("2025-03-30 02:30"),
        utc("2025-03-30 03:30"),
    ]


def test_it_returns_aware_utc_datetimes_on_whole_minutes() -> None:
    fire_time = parse("* * * * *").next_after(utc("2025-01-01 12:34:56.789"))

    assert fire_time == utc("2025-01-01 12:35")
    assert fire_time.tzinfo is UTC
    assert (fire_time.second, fire_time.microsecond) == (0, 0)


def test_it_rejects_a_naive_start() -> None:
    schedule = parse("10m")

    with pytest.raises(ValueError, match="timezone-aware"):
        schedule.next_after(datetime(2025, 1, 1))
    with pytest.raises(ValueError, match="timezone-aware"):
        schedule.iter_after(datetime(2025, 1, 1))


def test_it_iterates_successive_fire_times() -> None:
    fire_times = list(islice(parse("*/20 23 * * *").iter_after(utc("2025-12-31 23:30")), 4))

    assert fire_times == [
        utc("2025-12-31 23:40"),
        utc("2026-01-01 23:00"),
        utc("2026-01-01 23:20"),
        utc("2026-01-01 23:40"),
    ]


def test_it_says_whether_it_fires_at_a_moment() -> None:
    schedule = parse("*/15 9-17 * * 1-5")  # 2025-01-06 is a Monday
    assert schedule.fires_at(utc("2025-01-06 09:15"))
    assert schedule.fires_at(utc("2025-01-06 09:00"))
    assert not schedule.fires_at(utc("2025-01-06 09:16"))
    assert not schedule.fires_at(utc("2025-01-06 09:15:30"))  # fire times are whole minutes
    assert not schedule.fires_at(utc("2025-01-05 09:15"))  # a Sunday
    with pytest.raises(ValueError, match="naive"):
        schedule.fires_at(datetime(2025, 1, 6, 9, 15))


def test_it_stops_at_the_last_year_datetime_can_hold() -> None:
    schedule = parse("0 0 1 1 *")

    assert list(schedule.iter_after(utc("9998-06-01"))) == [utc("9999-01-01")]
    with pytest.raises(ValueError, match="no fire time after"):
        schedule.next_after(utc("9999-06-01"))


def test_it_imports_without_django() -> None:
    code = (
        "import sys; sys.modules['django'] = None\n"
        "import chalkcompute.schedule\n"
        "assert 'django' not in {name.partition('.')[0] for name, module in "
        "sys.modules.items() if module is not None}"
    )

    subprocess.run([sys.executable, "-c", code], check=True)
