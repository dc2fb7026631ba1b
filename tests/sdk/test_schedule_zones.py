"""Schedules read on a time zone's wall clock, through its clock changes.

Two oracles check the engine around every clock change of 2025 and 2026 in zones picked for
their odd rules (30- and 45-minute offsets, a 30-minute and a 2-hour daylight saving shift,
changes at midnight, Morocco's Ramadan changes, Ireland's negative daylight saving time):

* a replay of Debian cron's main loop (cron.c), written here: it wakes at every minute, reads
  the wall clock and applies cron's own cases for a clock that moved, so it is the rule itself
  rather than a second implementation of the engine's shortcuts;
* cronsim, which implements the same rules, and agrees with the engine everywhere but in the
  cases listed in CRONSIM_DEVIATIONS, where it departs from Debian cron (see there).

Days in the pinned examples: 2025-03-09 and 2025-11-02 are the New York changes, 2025-03-30
and 2025-10-26 the Berlin ones.
"""

import random
import re
from bisect import bisect_right
from datetime import UTC, datetime, timedelta, timezone
from itertools import islice, takewhile
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import cronsim
import pytest

from chalkcompute import schedule as engine
from chalkcompute.schedule import Fire, InvalidScheduleError, parse
from tests.sdk.test_schedule_differential import ordinary_crontab
from tests.sdk.test_schedule_oracle import Oracle

MINUTE = timedelta(minutes=1)
EPOCH = datetime(1970, 1, 1)

ZONES = [
    "America/New_York",
    "Europe/Berlin",
    "Europe/London",
    "Europe/Dublin",  # its winter time is the "daylight saving" one, with a negative shift
    "Australia/Sydney",
    "Australia/Lord_Howe",  # shifts by 30 minutes
    "Pacific/Chatham",  # +12:45 and +13:45
    "Asia/Kolkata",  # +05:30, no changes since 1945
    "Asia/Kathmandu",  # +05:45 since a 15-minute jump in 1986
    "America/Santiago",  # changes at midnight: 24:00 becomes 01:00 or 23:00
    "Africa/Casablanca",  # back an hour for Ramadan, forward after it
    "America/St_Johns",  # -03:30 and -02:30
    "Antarctica/Troll",  # shifts by 2 hours
]
CRONTABS = [
    # Fixed-time jobs: neither the minute nor the hour field starts with "*".
    "30 2 * * *",
    "0 2 * * *",
    "59 1 * * *",
    "0 3 * * *",
    "15 1-3 * * *",
    "0 0 * * *",
    "0,30 2,3 * * *",  # two skipped times and one at the jump: one run
    "45 23 * * 6",
    # Wildcard jobs.
    "*/15 * * * *",
    "0 * * * *",
    "30 * * * *",
    "*/7 2 * * *",
    "0 */6 * * *",
    "*/20 1 * * *",
    "*/15 0 * * 0",
]


def clock_changes(zone: ZoneInfo, start: datetime, end: datetime) -> list[datetime]:
    """The instants in [start, end) at which the zone's UTC offset changes, to the minute."""
    changes = []
    offset = start.astimezone(zone).utcoffset()
    for day in range((end - start).days):
        low, high = start + timedelta(days=day), start + timedelta(days=day + 1)
        if high.astimezone(zone).utcoffset() == offset:
            continue
        while high - low > MINUTE:
            middle = low + (high - low) // MINUTE // 2 * MINUTE
            if middle.astimezone(zone).utcoffset() == offset:
                low = middle
            else:
                high = middle
        changes.append(high)
        offset = high.astimezone(zone).utcoffset()
    return changes


# Zones that no longer change are checked at their last changes too: on 1 January 1986 Nepal
# moved its clock 15 minutes forward; India ended its war time in 1945.
LAST_CHANGE_YEARS = {"Asia/Kathmandu": 1985, "Asia/Kolkata": 1945}


def windows(name: str) -> list[tuple[datetime, datetime]]:
    """Two days around each clock change of 2025 and 2026 (or, in a zone without any, of the
    year of its last ones), and around a day without one."""
    year = LAST_CHANGE_YEARS.get(name, 2025)
    changes = clock_changes(
        ZoneInfo(name), datetime(year, 1, 1, tzinfo=UTC), datetime(year + 2, 1, 1, tzinfo=UTC)
    )
    middles = [*changes, datetime(2025, 1, 15, tzinfo=UTC)]
    return [(middle - timedelta(days=1), middle + timedelta(days=1)) for middle in middles]


def is_wildcard(crontab: str) -> bool:
    minute, hour = crontab.split()[:2]
    return minute.startswith("*") or hour.startswith("*")


def debian_cron_runs(
    crontabs: list[str], zone: ZoneInfo, start: datetime, end: datetime
) -> dict[str, list[datetime]]:
    """The minutes in (start, end] in which Debian's cron starts each crontab's job.

    A replay of the main loop of Debian's cron (cron.c, 3.0pl1): cron wakes at every minute
    and counts time in minutes of the local wall clock. ``virtual`` is the minute whose jobs
    have all run; when the clock moves by other than one minute, cron picks a case:
    * 2 to 5 minutes forward (woke up late): every job, for each minute missed;
    * 6 minutes to 3 hours forward (say, daylight saving time begins): the wildcard jobs of
      the current minute, then the fixed-time jobs of each minute skipped, at once;
    * back by up to 3 hours (it ends): the wildcard jobs of the current minute only, until
      the clock is past ``virtual`` again, so fixed-time jobs do not run twice;
    * any other change: jump to the new time and run its jobs.
    cron can start a job more than once in the minute after a jump (once per skipped time
    that matches); the engine, like cronsim, runs it once, so a minute is kept once here.
    cron reads its UTC offset again only when daylight saving time starts or ends, so it
    misses a change of standard time (Nepal's in 1986) until restarted; the replay reads the
    offset every minute, as a restarted cron does.
    """
    jobs = [(crontab, Oracle(crontab), is_wildcard(crontab)) for crontab in crontabs]
    runs: dict[str, list[datetime]] = {crontab: [] for crontab in crontabs}

    def clock(instant: datetime) -> int:
        wall = (instant + instant.astimezone(zone).utcoffset()).replace(tzinfo=None)
        return (wall - EPOCH) // MINUTE

    def find_jobs(minute: int, now: datetime, wildcard: bool, fixed: bool) -> None:
        wall = EPOCH + minute * MINUTE
        for crontab, oracle, job_is_wildcard in jobs:
            if not (wildcard if job_is_wildcard else fixed):
                continue
            if wall.minute in oracle.minutes and wall.hour in oracle.hours:
                if oracle.fires_on(wall.date()) and runs[crontab][-1:] != [now]:
                    runs[crontab].append(now)

    now = start
    virtual = clock(now)
    while now < end:
        now += MINUTE
        running = clock(now)
        difference = running - virtual
        if difference == 1:
            virtual = running
            find_jobs(virtual, now, wildcard=True, fixed=True)
        elif 0 < difference <= 5:
            while virtual < running:
                virtual += 1
                find_jobs(virtual, now, wildcard=True, fixed=True)
        elif 5 < difference <= 180:
            find_jobs(running, now, wildcard=True, fixed=False)
            while virtual < running:
                virtual += 1
                find_jobs(virtual, now, wildcard=False, fixed=True)
        elif -180 < difference <= 0:
            find_jobs(running, now, wildcard=True, fixed=False)
        else:
            virtual = running
            find_jobs(running, now, wildcard=True, fixed=True)
    return runs


def engine_runs(crontab: str, name: str, start: datetime, end: datetime) -> list[datetime]:
    return list(takewhile(lambda t: t <= end, parse(crontab, name).iter_after(start)))


def cronsim_runs(crontab: str, zone: ZoneInfo, start: datetime, end: datetime) -> list[datetime]:
    fire_times = cronsim.CronSim(crontab, start.astimezone(zone))  # its zone is the start's
    return [t.astimezone(UTC) for t in takewhile(lambda t: t <= end, fire_times)]


@pytest.mark.parametrize("name", ZONES)
def test_it_runs_jobs_when_debian_cron_does_around_clock_changes(name: str) -> None:
    zone = ZoneInfo(name)
    for start, end in windows(name):
        expected = debian_cron_runs(CRONTABS, zone, start, end)
        for crontab in CRONTABS:
            assert engine_runs(crontab, name, start, end) == expected[crontab], (crontab, start)


@pytest.mark.parametrize("name", ZONES)
def test_its_next_fire_time_from_any_start_is_debian_crons(name: str) -> None:
    # Starts every 7 minutes and 13 seconds across each change: before it, in a skipped or
    # repeated hour (either pass), and after it.
    zone = ZoneInfo(name)
    for start, end in windows(name):
        runs = debian_cron_runs(CRONTABS, zone, start, end)
        step = timedelta(minutes=7, seconds=13)
        starts = [start + n * step for n in range((end - start) // step)]
        for after in starts:
            for crontab in CRONTABS:
                fire_time = parse(crontab, name).next_after(after)
                later = runs[crontab][bisect_right(runs[crontab], after) :]
                if later:
                    assert fire_time == later[0], (crontab, after)
                else:
                    assert fire_time > end, (crontab, after)


# Where cronsim departs from Debian cron, the engine follows cron. cronsim moves a wildcard
# job through hours by adding 3600 s of real time, and through days by starting at midnight:
# * after a change by part of an hour (30 minutes on Lord Howe Island, 15 in Nepal in 1986),
#   its hourly steps land past the hour and it misses runs: "0 */6 * * *" loses 06:00 on both
#   Lord Howe change days, "30 * * * *" the 02:30 just after the jump forward and the second
#   01:30 after the jump back;
# * it misses the part of a repeated time that does not start on the hour: Chatham repeats
#   02:45-03:44, and "*/7 2 * * *" loses the second 02:49 and 02:56;
# * it starts a day at 00:00 even when 00:00 is skipped (Santiago goes from 24:00 to 01:00 on
#   a Sunday), so "*/15 0 * * 0" runs once at 01:00, where cron does not run it that day.
CRONSIM_DEVIATIONS = {
    "Australia/Lord_Howe": {"0 */6 * * *", "30 * * * *", "*/7 2 * * *"},
    "Asia/Kathmandu": {"30 * * * *", "*/7 2 * * *", "*/20 1 * * *"},
    "Pacific/Chatham": {"*/7 2 * * *"},
    "America/Santiago": {"*/15 0 * * 0"},
}


@pytest.mark.parametrize("name", ZONES)
def test_it_agrees_with_cronsim_around_clock_changes(name: str) -> None:
    zone = ZoneInfo(name)
    differing = set()
    for start, end in windows(name):
        for crontab in CRONTABS:
            if engine_runs(crontab, name, start, end) != cronsim_runs(crontab, zone, start, end):
                differing.add(crontab)
    assert differing == CRONSIM_DEVIATIONS.get(name, set())


def test_each_cronsim_deviation_is_as_described() -> None:
    lord_howe, kathmandu = "Australia/Lord_Howe", "Asia/Kathmandu"
    chatham, santiago = "Pacific/Chatham", "America/Santiago"

    def local(crontab: str, name: str, day: str, engine_or_cronsim: str) -> list[str]:
        zone = ZoneInfo(name)
        start = datetime.fromisoformat(day).replace(tzinfo=zone)
        end = start + timedelta(days=1) - MINUTE
        if engine_or_cronsim == "engine":
            runs = engine_runs(crontab, name, start, end)
        else:
            runs = cronsim_runs(crontab, zone, start, end)
        return [t.astimezone(zone).strftime("%H:%M%z") for t in runs]

    def missing(crontab: str, name: str, day: str) -> list[str]:
        ours, theirs = (local(crontab, name, day, side) for side in ("engine", "cronsim"))
        assert set(theirs) <= set(ours)
        return [t for t in ours if t not in theirs]

    assert missing("0 */6 * * *", lord_howe, "2025-10-05") == ["06:00+1100"]
    assert missing("0 */6 * * *", lord_howe, "2025-04-06") == ["06:00+1030"]
    assert missing("30 * * * *", lord_howe, "2025-10-05") == ["02:30+1100"]
    assert missing("30 * * * *", lord_howe, "2025-04-06") == ["01:30+1030"]
    assert missing("30 * * * *", kathmandu, "1985-12-31 12:00") == ["00:30+0545"]
    assert missing("*/7 2 * * *", chatham, "2025-04-06") == ["02:49+1245", "02:56+1245"]
    assert local("*/15 0 * * 0", santiago, "2025-09-06 23:59", "engine") == []
    assert local("*/15 0 * * 0", santiago, "2025-09-06 23:59", "cronsim") == ["01:00-0300"]


# -- Pinned examples -------------------------------------------------------------------------


def utc(text: str) -> datetime:
    return datetime.fromisoformat(text).replace(tzinfo=UTC)


def fire_times(crontab: str, name: str, after: str, count: int) -> list[datetime]:
    return list(islice(parse(crontab, name).iter_after(utc(after)), count))


def test_a_fixed_time_job_in_new_york_runs_once_on_each_change_day() -> None:
    # Spring: 02:30 does not exist, it runs at the jump, 03:00 EDT.
    assert fire_times("30 2 * * *", "America/New_York", "2025-03-08 12:00", 2) == [
        utc("2025-03-09 07:00"),
        utc("2025-03-10 06:30"),
    ]
    # Autumn: 02:30 comes once, after the repeated hour, in EST.
    assert fire_times("30 2 * * *", "America/New_York", "2025-11-01 12:00", 2) == [
        utc("2025-11-02 07:30"),
        utc("2025-11-03 07:30"),
    ]
    # 01:30 comes twice, and runs the first time, in EDT.
    assert fire_times("30 1 * * *", "America/New_York", "2025-11-01 12:00", 2) == [
        utc("2025-11-02 05:30"),
        utc("2025-11-03 06:30"),
    ]


def test_a_wildcard_job_follows_the_wall_clock() -> None:
    assert fire_times("*/30 * * * *", "America/New_York", "2025-03-09 06:00", 3) == [
        utc("2025-03-09 06:30"),  # 01:30 EST
        utc("2025-03-09 07:00"),  # 03:00 EDT: 02:00 and 02:30 do not exist
        utc("2025-03-09 07:30"),
    ]
    assert fire_times("*/30 * * * *", "America/New_York", "2025-11-02 04:50", 5) == [
        utc("2025-11-02 05:00"),  # 01:00 EDT
        utc("2025-11-02 05:30"),
        utc("2025-11-02 06:00"),  # 01:00 EST
        utc("2025-11-02 06:30"),
        utc("2025-11-02 07:00"),  # 02:00 EST
    ]


def test_it_fires_at_a_moment_as_its_fire_times_say_through_clock_changes() -> None:
    fixed, in_utc = parse("30 1 * * *", "America/New_York"), parse("30 1 * * *", "UTC")
    assert fixed.fires_at(utc("2025-11-02 05:30"))  # 01:30 EDT, the first of the two
    assert not fixed.fires_at(utc("2025-11-02 06:30"))  # 01:30 EST, the repeat
    assert not in_utc.fires_at(utc("2025-11-02 05:30"))  # read in UTC: 01:30 UTC only
    moved = parse("30 2 * * *", "America/New_York")
    assert moved.fires_at(utc("2025-03-09 07:00"))  # 02:30 does not exist: runs at the jump
    every_half_hour = parse("*/30 * * * *", "America/New_York")
    assert every_half_hour.fires_at(utc("2025-11-02 05:30"))  # a wildcard job runs in both
    assert every_half_hour.fires_at(utc("2025-11-02 06:30"))


def test_a_weekday_job_in_berlin_keeps_to_its_local_time() -> None:
    assert fire_times("0 9 * * 1-5", "Europe/Berlin", "2025-01-06 00:00", 1) == [
        utc("2025-01-06 08:00")
    ]
    assert fire_times("0 9 * * 1-5", "Europe/Berlin", "2025-07-07 00:00", 1) == [
        utc("2025-07-07 07:00")
    ]


def test_half_and_three_quarter_hour_zones() -> None:
    assert fire_times("0 9 * * *", "Asia/Kolkata", "2025-01-01 00:00", 1) == [
        utc("2025-01-01 03:30")
    ]
    assert fire_times("0 9 * * *", "Asia/Kathmandu", "2025-01-01 00:00", 1) == [
        utc("2025-01-01 03:15")
    ]
    assert fire_times("0 9 * * *", "America/St_Johns", "2025-07-01 00:00", 1) == [
        utc("2025-07-01 11:30")
    ]
    # Chatham jumps from 02:45 to 03:45 on 28 September 2025: 03:00 runs at the jump.
    assert fire_times("0 3 * * *", "Pacific/Chatham", "2025-09-27 00:00", 1) == [
        utc("2025-09-27 14:00")
    ]


def test_a_shorthand_is_aligned_to_the_zones_clock() -> None:
    assert fire_times("6h", "Asia/Kolkata", "2025-01-01 00:00", 4) == [
        utc("2025-01-01 00:30"),  # 06:00 +05:30
        utc("2025-01-01 06:30"),
        utc("2025-01-01 12:30"),
        utc("2025-01-01 18:30"),  # 00:00 the next day
    ]
    # 30-minute daylight saving time on Lord Howe Island: still at 00:00, 06:00, 12:00, 18:00.
    assert fire_times("6h", "Australia/Lord_Howe", "2025-10-04 12:00", 4) == [
        utc("2025-10-04 13:30"),  # 00:00 +10:30
        utc("2025-10-04 19:00"),  # 06:00 +11:00
        utc("2025-10-05 01:00"),
        utc("2025-10-05 07:00"),
    ]


def test_it_accepts_any_aware_start_and_returns_utc_whole_minutes() -> None:
    tokyo = datetime(2025, 1, 1, 9, 0, 30, tzinfo=ZoneInfo("Asia/Tokyo"))  # 00:00:30 UTC

    fire_time = parse("* * * * *", "Europe/Berlin").next_after(tokyo)

    assert fire_time == utc("2025-01-01 00:01")
    assert fire_time.tzinfo is timezone.utc  # noqa: UP017 - the very object run images use
    with pytest.raises(ValueError, match="timezone-aware"):
        parse("10m", "Europe/Berlin").next_after(datetime(2025, 1, 1))
    with pytest.raises(ValueError, match="timezone-aware"):
        parse("10m", "Europe/Berlin").iter_after(datetime(2025, 1, 1))


def test_it_stops_where_datetime_does() -> None:
    # 22:00 on 31 December 9999 in New York is in the year 10000 in UTC.
    schedule = parse("0 22 31 12 *", "America/New_York")

    assert list(schedule.iter_after(utc("9998-06-01"))) == [utc("9999-01-01 03:00")]
    with pytest.raises(ValueError, match="no fire time after"):
        schedule.next_after(utc("9999-06-01"))


# -- Time zone names -------------------------------------------------------------------------


def test_it_keeps_the_zone_and_compares_by_crontab_and_zone() -> None:
    berlin = parse("10m", "Europe/Berlin")

    assert berlin.timezone == "Europe/Berlin"
    assert berlin.cron == "*/10 * * * *"
    assert berlin == parse("*/10 * * * *", "Europe/Berlin")
    assert hash(berlin) == hash(parse("*/10 * * * *", "Europe/Berlin"))
    assert berlin != parse("10m") != parse("10m", "Europe/Paris")
    assert parse("10m").timezone == parse("10m", "UTC").timezone == "UTC"
    assert parse("10m", "UTC") is parse("10m")  # one cached schedule for both spellings
    assert parse("10m", "Europe/Berlin") is berlin


@pytest.mark.parametrize("name", ["UTC", "Europe/Berlin", "US/Eastern", "Etc/GMT-14"])
def test_it_accepts_utc_and_area_location_names(name: str) -> None:
    assert parse("0 9 * * *", name).timezone == name


@pytest.mark.parametrize(
    ("name", "message"),
    [
        ("Europe/Berln", 'unknown time zone "Europe/Berln": did you mean "Europe/Berlin"?'),
        ("europe/berlin", 'unknown time zone "europe/berlin": did you mean "Europe/Berlin"?'),
        ("utc", 'unknown time zone "utc": did you mean "UTC"?'),
        ("America/New York", 'did you mean "America/New_York"?'),
        ("Berlin", 'did you mean "Europe/Berlin"?'),
        (
            "PST",
            '"PST" is an abbreviation, not a time zone: use an IANA name such as '
            '"America/Los_Angeles"',
        ),
        ("PDT", '"PDT" is an abbreviation, not a time zone: use an IANA name such as'),
        ("EST", '"EST" is an abbreviation, not a time zone: use an IANA name such as'),
        ("CET", '"CET" is an abbreviation, not a time zone: use an IANA name such as'),
        ("BST", 'use an IANA name such as "Europe/London"'),
        ("IST", 'use an IANA name such as "Asia/Kolkata"'),
        ("EST5EDT", '"EST5EDT" is a legacy name, not a time zone: use an IANA name such as'),
        ("MST7MDT", 'use an IANA name such as "America/Denver"'),
        ("GMT", '"GMT" is not accepted as a time zone: write "UTC"'),
        ("Japan", '"Japan" is not an Area/Location time zone name: use an IANA name such as'),
        ("Mars/Olympus_Mons", 'unknown time zone "Mars/Olympus_Mons": use an IANA name such as'),
        ("", "the time zone is empty"),
        (" ", "the time zone is empty"),
    ],
)
def test_it_explains_a_time_zone_it_refuses(name: str, message: str) -> None:
    with pytest.raises(InvalidScheduleError, match=re.escape(message)):
        parse("0 9 * * *", name)


def test_it_wants_a_time_zone_name_as_a_string() -> None:
    with pytest.raises(InvalidScheduleError, match="a time zone must be a string .* not ZoneInfo"):
        parse("0 9 * * *", ZoneInfo("Europe/Berlin"))  # type: ignore[arg-type]


def test_it_says_when_the_machine_has_no_zone_data(monkeypatch: pytest.MonkeyPatch) -> None:
    def not_found(name: str) -> ZoneInfo:
        raise ZoneInfoNotFoundError(f"No time zone found with key {name}")

    engine._parse_in_zone.cache_clear()
    engine._zone.cache_clear()
    monkeypatch.setattr(engine, "ZoneInfo", not_found)
    with pytest.raises(InvalidScheduleError, match='data of time zone "Europe/Berlin" cannot'):
        parse("0 9 * * *", "Europe/Berlin")
    monkeypatch.setattr(engine, "_installed_zones", frozenset)
    with pytest.raises(InvalidScheduleError, match="this machine has no time zone data"):
        parse("0 9 * * *", "Europe/Berlin")


# -- Preview and words -----------------------------------------------------------------------


def preview(crontab: str, name: str, after: str, count: int) -> list[tuple[str, str | None]]:
    """Each fire time on the zone's clock, with its offset, and its note."""
    fires = parse(crontab, name).preview(utc(after), count)
    for fire in fires:
        assert fire.at.tzinfo is timezone.utc  # noqa: UP017
        # Not local == at: Python never finds a time that happens twice equal to another
        # zone's time.
        assert fire.local.astimezone(UTC) == fire.at and fire.local.tzinfo == ZoneInfo(name)
    return [(fire.local.strftime("%d %H:%M%z"), fire.note) for fire in fires]


def test_its_preview_explains_a_fixed_time_job_moved_by_a_clock_change() -> None:
    assert preview("30 2 * * *", "America/New_York", "2025-03-08 12:00", 2) == [
        ("09 03:00-0400", "02:30 does not exist on 9 March: runs at 03:00"),
        ("10 02:30-0400", None),
    ]
    assert preview("30 1 * * *", "America/New_York", "2025-11-01 12:00", 2) == [
        ("02 01:30-0400", "01:30 happens twice on 2 November: runs once, at the first (EDT)"),
        ("03 01:30-0500", None),
    ]
    assert preview("0,30 2,3 * * *", "Europe/Berlin", "2025-03-29 23:00", 2) == [
        ("30 03:00+0200", "02:00 and 02:30 do not exist on 30 March: runs once, at 03:00"),
        ("30 03:30+0200", None),
    ]
    assert preview("0-50/10 2 * * *", "Europe/Berlin", "2025-03-29 23:00", 1) == [
        ("30 03:00+0200", "02:00–02:50 does not exist on 30 March: runs once, at 03:00"),
    ]
    assert preview("15 2 * * *", "Australia/Lord_Howe", "2025-10-04 12:00", 1) == [
        ("05 02:30+1100", "02:15 does not exist on 5 October: runs at 02:30"),
    ]


def test_its_preview_explains_a_wildcard_job_through_a_clock_change() -> None:
    repeated = "01:00–01:59 happens twice on 2 November: runs in both"
    assert preview("*/30 * * * *", "America/New_York", "2025-11-02 04:50", 5) == [
        ("02 01:00-0400", repeated),
        ("02 01:30-0400", repeated),
        ("02 01:00-0500", repeated),
        ("02 01:30-0500", repeated),
        ("02 02:00-0500", None),
    ]
    assert preview("*/30 * * * *", "America/New_York", "2025-03-09 06:10", 2) == [
        ("09 01:30-0500", None),
        ("09 03:00-0400", "02:00–02:59 does not exist on 9 March: runs in it are skipped"),
    ]
    assert preview("*/20 1 * * *", "Australia/Lord_Howe", "2025-04-05 14:30", 3) == [
        ("06 01:40+1100", "01:30–01:59 happens twice on 6 April: runs in both"),
        ("06 01:40+1030", "01:30–01:59 happens twice on 6 April: runs in both"),
        ("07 01:00+1030", None),
    ]


def test_a_utc_preview_has_no_notes() -> None:
    fires = parse("0 9 * * *").preview(utc("2025-01-01 00:00"), 2)

    assert fires == [
        Fire(utc("2025-01-01 09:00"), utc("2025-01-01 09:00"), None),
        Fire(utc("2025-01-02 09:00"), utc("2025-01-02 09:00"), None),
    ]
    assert fires[0].local.tzinfo is timezone.utc  # noqa: UP017


@pytest.mark.parametrize(
    ("crontab", "name", "description"),
    [
        (
            "0 9 * * 1-5",
            "Europe/Berlin",
            "every Monday through Friday at 09:00, Europe/Berlin time",
        ),
        ("10m", "America/New_York", "every 10 minutes, America/New_York time"),
        ("0 0 1 * *", "Asia/Kolkata", "at 00:00 on day 1 of the month, Asia/Kolkata time"),
        (
            "2h",
            "Asia/Tokyo",
            "every 2 hours, on the hour (00:00, 02:00, …, 22:00), Asia/Tokyo time",
        ),
        ("0 2 * * *", "UTC", "every day at 02:00 UTC"),
    ],
)
def test_it_describes_times_on_the_zones_clock(crontab: str, name: str, description: str) -> None:
    assert parse(crontab, name).describe() == description


# -- The UTC engine --------------------------------------------------------------------------


def test_a_zone_without_changes_gives_the_utc_engines_times_shifted() -> None:
    # "UTC" is today's engine itself; Etc/UTC and Asia/Kolkata (+05:30 since 1945) go through
    # the zone's path, which must then agree with it to the minute.
    rng = random.Random(1945)
    kolkata = timedelta(hours=5, minutes=30)
    for _ in range(300):
        crontab = ordinary_crontab(rng)
        try:
            schedule = parse(crontab)
        except InvalidScheduleError:
            continue
        start = datetime(2024, 1, 1, tzinfo=UTC) + timedelta(seconds=rng.randint(0, 10**8))
        expected = list(islice(schedule.iter_after(start), 3))
        assert list(islice(parse(crontab, "UTC").iter_after(start), 3)) == expected
        assert list(islice(parse(crontab, "Etc/UTC").iter_after(start), 3)) == expected
        shifted = [t - kolkata for t in islice(schedule.iter_after(start + kolkata), 3)]
        assert list(islice(parse(crontab, "Asia/Kolkata").iter_after(start), 3)) == shifted
