"""The engine against cronsim and croniter on thousands of random ordinary crontabs.

Both libraries mishandle "a-a" ranges: cronsim reads "5-5/10" as "5-59/10", and croniter
widens "5-5" to the whole field. Those forms are kept out of the generator; the hand-written
table in test_schedule.py and the oracle in test_schedule_oracle.py cover them.

One more class is kept away from croniter only: a day field that lists "*" after another item,
such as "1,*". Cron sets its AND day rule only when the field's first character is "*"
(cronie, src/entry.c: `if (ch == '*') e->flags |= DOM_STAR;` before parsing the list), so
"0 0 1,* * 1" is OR and runs every day -- cronsim agrees -- but croniter sees the expanded
field as "*" and runs it on Mondays only.
"""

import random
from datetime import UTC, datetime, timedelta
from itertools import islice

import croniter
import cronsim
import pytest

from chalkcompute.schedule import InvalidScheduleError, parse

MONTHS = "JAN FEB MAR APR MAY JUN JUL AUG SEP OCT NOV DEC".split()
WEEKDAYS = "SUN MON TUE WED THU FRI SAT".split()
FIELDS = [(0, 59, None), (0, 23, None), (1, 31, None), (1, 12, MONTHS), (0, 7, WEEKDAYS)]
COUNT = 2500
FIRE_TIMES = 3


def spell(rng: random.Random, value: int, low: int, names: list[str] | None) -> str:
    if names and value - low < len(names) and rng.random() < 0.3:
        name = names[value - low]
        return rng.choice([name, name.lower(), name.capitalize()])
    return str(value)


def ordinary_item(rng: random.Random, low: int, high: int, names: list[str] | None) -> str:
    first, last = sorted(rng.sample(range(low, high + 1), 2))  # never an "a-a" range
    form = rng.random()
    if form < 0.15:
        return "*"
    if form < 0.3:
        return f"*/{rng.randint(1, high + 5)}"
    if form < 0.55:
        return spell(rng, first, low, names)
    span = f"{spell(rng, first, low, names)}-{spell(rng, last, low, names)}"
    return span if form < 0.8 else f"{span}/{rng.randint(1, high + 5)}"


def ordinary_crontab(rng: random.Random) -> str:
    return " ".join(
        ",".join(ordinary_item(rng, *spec) for _ in range(rng.choice([1, 1, 1, 2, 3])))
        for spec in FIELDS
    )


def lists_star_late(day_field: str) -> bool:
    return "*" in day_field and not day_field.startswith("*")


def test_it_agrees_with_cronsim_and_croniter_on_random_crontabs() -> None:
    rng = random.Random(2718)
    compared_with_croniter = 0
    for _ in range(COUNT):
        expr = ordinary_crontab(rng)
        start = datetime(2024, 1, 1, tzinfo=UTC) + timedelta(
            seconds=rng.randint(0, 7 * 365 * 86400)
        )
        try:
            schedule = parse(expr)
        except InvalidScheduleError as error:
            # Late days in short months under the AND rule; cronsim refuses them too.
            assert "can never fire" in str(error), expr
            with pytest.raises(cronsim.CronSimError):
                cronsim.CronSim(expr, start)
            continue
        ours = list(islice(schedule.iter_after(start), FIRE_TIMES))

        assert list(islice(cronsim.CronSim(expr, start), FIRE_TIMES)) == ours, (expr, start)

        fields = expr.split()
        if lists_star_late(fields[2]) or lists_star_late(fields[4]):
            continue
        # implement_cron_bug: a day field starting with "*" makes the day rule AND, as in
        # cron (croniter's default would make it OR).
        theirs = croniter.croniter(expr, start, implement_cron_bug=True)
        assert [theirs.get_next(datetime) for _ in range(FIRE_TIMES)] == ours, (expr, start)
        compared_with_croniter += 1
    assert compared_with_croniter > COUNT * 0.7  # the exclusion stays a small class
