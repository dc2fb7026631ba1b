"""The engine against a brute-force oracle written here, on random crontabs.

The oracle knows nothing of the engine's tables and jumps: it expands each field with a
straightforward reading of the syntax, then walks forward minute by minute, testing set
membership and cron's day rule. The generator draws every valid form, including the ones the
reference libraries misread ("a-a", "a-a/n", "*" inside a list, names in any case, Sunday as
7, steps larger than their range), across start points spread over 2024-2030.
"""

import calendar
import random
from datetime import UTC, date, datetime, time, timedelta
from itertools import islice

import hypothesis.strategies as st
from hypothesis import given, settings

from chalkcompute.schedule import InvalidScheduleError, Schedule, parse

MONTHS = "JAN FEB MAR APR MAY JUN JUL AUG SEP OCT NOV DEC".split()
WEEKDAYS = "SUN MON TUE WED THU FRI SAT".split()
# (low, high, names) for minute, hour, day-of-month, month, day-of-week.
FIELDS = [(0, 59, None), (0, 23, None), (1, 31, None), (1, 12, MONTHS), (0, 7, WEEKDAYS)]
SEARCH_YEARS = 60  # a Sunday February 29 can be 40 years away


class Oracle:
    """A crontab read the simple way: five sets of values and the day rule."""

    def __init__(self, expr: str) -> None:
        fields = expr.split()
        self.minutes, self.hours, self.days, self.months, weekdays = (
            self.expand(text, *spec) for text, spec in zip(fields, FIELDS, strict=True)
        )
        self.weekdays = {weekday % 7 for weekday in weekdays}
        self.day_and = fields[2].startswith("*") or fields[4].startswith("*")

    @staticmethod
    def expand(text: str, low: int, high: int, names: list[str] | None) -> set[int]:
        def value(token: str) -> int:
            return int(token) if token.isdigit() else names.index(token.upper()) + low

        values: set[int] = set()
        for item in text.split(","):
            span, _, step = item.partition("/")
            if span == "*":
                first, last = low, high
            else:
                first_text, _, last_text = span.partition("-")
                first = value(first_text)
                last = value(last_text) if last_text else first
            values.update(range(first, last + 1, int(step or 1)))
        return values

    def fires_on(self, day: date) -> bool:
        if day.month not in self.months:
            return False
        in_days = day.day in self.days
        in_weekdays = day.isoweekday() % 7 in self.weekdays
        return (in_days and in_weekdays) if self.day_and else (in_days or in_weekdays)

    def next_after(self, dt: datetime) -> datetime:
        minute = dt.replace(second=0, microsecond=0) + timedelta(minutes=1)
        end = minute + timedelta(days=366 * SEARCH_YEARS)
        while minute < end:
            if not self.fires_on(minute.date()):
                # No minute of a day that does not match can fire: skip to the next day so
                # that sparse crontabs stay quick to check.
                minute = datetime.combine(minute.date() + timedelta(days=1), time(), UTC)
            elif minute.hour in self.hours and minute.minute in self.minutes:
                return minute
            else:
                minute += timedelta(minutes=1)
        raise AssertionError(f"the oracle found no fire time within {SEARCH_YEARS} years")


def spell(rng: random.Random, value: int, low: int, names: list[str] | None) -> str:
    """A value as a number or, sometimes, as a name in any case (there is no name for 7)."""
    if names and value - low < len(names) and rng.random() < 0.3:
        name = names[value - low]
        return rng.choice([name, name.lower(), name.capitalize()])
    return str(value)


def random_item(rng: random.Random, low: int, high: int, names: list[str] | None) -> str:
    first, last = sorted(rng.randint(low, high) for _ in range(2))
    step = rng.choice([1, 2, 3, 5, 7, 10, 15, 30, 100])
    form = rng.choice(["*", "*/n", "a", "a-b", "a-b/n", "a-a", "a-a/n"])
    if form == "*":
        return "*"
    if form == "*/n":
        return f"*/{step}"
    if form == "a":
        return spell(rng, first, low, names)
    if form in ("a-a", "a-a/n"):
        last = first
    span = f"{spell(rng, first, low, names)}-{spell(rng, last, low, names)}"
    return span if form in ("a-b", "a-a") else f"{span}/{step}"


def random_crontab(rng: random.Random) -> str:
    return " ".join(
        ",".join(random_item(rng, *spec) for _ in range(rng.choice([1, 1, 1, 2, 3])))
        for spec in FIELDS
    )


def random_start(rng: random.Random) -> datetime:
    seconds = rng.randint(0, int(timedelta(days=7 * 365).total_seconds()))
    return datetime(2024, 1, 1, tzinfo=UTC) + timedelta(seconds=seconds)


def never_fires(oracle: Oracle) -> bool:
    # 2000-2027 holds every (month, day) on every weekday, February 29 included.
    return not any(
        oracle.fires_on(date(year, month, day))
        for year in range(2000, 2028)
        for month in oracle.months
        for day in range(1, calendar.monthrange(year, month)[1] + 1)
    )


def test_it_agrees_with_the_oracle_on_random_crontabs() -> None:
    rng = random.Random(20250101)
    checked = 0
    while checked < 400:
        expr = random_crontab(rng)
        oracle = Oracle(expr)
        try:
            schedule = parse(expr)
        except InvalidScheduleError as error:
            # The generator writes only valid syntax, so the one reason to refuse is a
            # crontab that can never fire, and the oracle must agree it never does.
            assert "can never fire" in str(error), expr
            assert never_fires(oracle), expr
            continue
        for start in (random_start(rng) for _ in range(3)):
            expected, after = [], start
            for _ in range(3):
                after = oracle.next_after(after)
                expected.append(after)
            assert list(islice(schedule.iter_after(start), 3)) == expected, (expr, start)
        checked += 1


def test_it_rejects_exactly_the_crontabs_that_never_fire() -> None:
    # Late days in short months, under both day rules: random crontabs rarely go there.
    rng = random.Random(31)
    outcomes = set()
    for _ in range(300):
        days = ",".join(rng.sample(["29", "30", "31", "30-31", "29-31/2", "*/30"], k=2))
        months = ",".join(rng.sample(["2", "4", "6", "9", "11", "FEB", "1", "apr-jun/2"], k=2))
        weekdays = rng.choice(["*", "*/2", "1", "MON-FRI", "*/7"])
        expr = f"0 0 {days} {months} {weekdays}"
        try:
            parse(expr)
            fires = True
        except InvalidScheduleError as error:
            assert "can never fire" in str(error), expr
            fires = False
        assert fires != never_fires(Oracle(expr)), expr
        outcomes.add(fires)
    assert outcomes == {True, False}


def test_it_agrees_with_the_oracle_on_sparse_crontabs() -> None:
    # Crontabs whose fire times are years apart, from starts spread over 2024-2030.
    crontabs = [
        "0 0 29 2 *",
        "0 0 29 2 */7",
        "59 23 29 FEB */3",
        "30 12 31 12 *",
        "0 0 13 * */5",
        "0 0 31 1-3,8 1-1/7",
        "15 4 */30 2,4 *",
    ]
    rng = random.Random(7)
    for expr in crontabs:
        oracle, schedule = Oracle(expr), parse(expr)
        for start in (random_start(rng) for _ in range(3)):
            assert schedule.next_after(start) == oracle.next_after(start), (expr, start)


crontab_text = st.text(
    alphabet=st.sampled_from(list("0123456789*,-/ \tMONJAFEDCSUTWHLR?#~@mhd.\n\u00a0\uff15")),
    max_size=40,
)


@settings(max_examples=400, deadline=None, database=None)
@given(crontab_text)
def test_it_either_parses_or_explains_any_text(text: str) -> None:
    try:
        schedule = parse(text)
    except InvalidScheduleError as error:
        assert str(error)
        return
    assert isinstance(schedule, Schedule)
    assert parse(schedule.cron) == schedule
    assert schedule.next_after(datetime(2025, 1, 1, tzinfo=UTC)) > datetime(2025, 1, 1, tzinfo=UTC)
    assert schedule.describe()


def test_it_describes_every_random_crontab_and_names_utc_for_clock_hours() -> None:
    rng = random.Random(99)
    for _ in range(500):
        expr = random_crontab(rng)
        try:
            schedule = parse(expr)
        except InvalidScheduleError:
            continue
        description = schedule.describe()
        assert description, expr
        if len(Oracle(expr).hours) < 24:
            assert "UTC" in description, (expr, description)
