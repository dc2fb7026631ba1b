"""Benchmark the schedule engine against cronsim and croniter on the same crontabs.

The server's tick calls ``parse(cron).next_after(now)`` for every due function, and the
console lists the next fire times of each, so two figures matter:

(a) parse + first fire time per second, from varied start times;
(b) iteration throughput: successive fire times per second from one iterator.

(a) is measured three times: on a set of common and tricky crontabs parsed over and over, as
the server's tick does (our ``parse`` answers repeats from its cache); on a pool of distinct
random crontabs larger than that cache, cycled so that each one is parsed and compiled anew
(only its individual fields, such as "*", may be remembered from earlier crontabs); and on the
first set again, read in a few time zones, against cronsim only (croniter does not follow
cron's rules for clock changes). Before timing, the first fire times of the engines are checked
to agree, so the comparison is between engines that compute the same thing.

Rates are per CPU second of this process, the best of a few rounds in which the engines take
turns. Run:  .venv/bin/python bench/schedule_engine.py [--seconds 20]
"""

from __future__ import annotations

import argparse
import platform
import random
import time
from collections.abc import Callable
from datetime import UTC, datetime
from importlib.metadata import version
from zoneinfo import ZoneInfo

import croniter
import cronsim

from chalkcompute import schedule

# Common schedules and the sparse or subtle ones that make engines search: month ends, leap
# days, the OR and AND day rules, names, Sunday as 7. All are read the same way by the three
# engines (no "a-a" ranges, which both libraries misread).
EXPRESSIONS = (
    "* * * * *",
    "*/5 * * * *",
    "*/7 * * * *",
    "0 * * * *",
    "15,45 * * * *",
    "0 */6 * * *",
    "30 2 * * *",
    "0 9 * * 1-5",
    "*/15 9-17 * * MON-FRI",
    "0 0 * * 0",
    "0 0 * * 7",
    "0 0 1 * *",
    "0 0 1 1 *",
    "0 0 29 2 *",
    "0 0 31 * *",
    "0 0 13 * 5",
    "0 0 */2 * 1",
    "5-55/10 8-18 * * *",
    "0 12 * JAN-MAR MON,FRI",
    "0 0 1-7 * 1",
    "0 3 * * 6,0",
    "0 0 1 */3 *",
    "20 4 15 6 *",
    "0 22 * * 5-7",
)
STARTS = (
    datetime(2024, 1, 1, 0, 0, tzinfo=UTC),
    datetime(2024, 2, 29, 23, 59, 30, tzinfo=UTC),
    datetime(2025, 6, 15, 12, 34, 56, tzinfo=UTC),
    datetime(2026, 12, 31, 23, 59, 59, tzinfo=UTC),
    datetime(2028, 3, 1, 4, 20, tzinfo=UTC),
    datetime(2030, 10, 7, 17, 45, 1, tzinfo=UTC),
)
CASES = tuple((expr, start) for expr in EXPRESSIONS for start in STARTS)
# Daylight saving time in either hemisphere, and a half-hour offset.
ZONES = ("America/New_York", "Europe/Berlin", "Australia/Sydney", "Asia/Kolkata")
# Start times on the zone's clock, as cronsim takes its zone from the start time.
ZONED_CASES = tuple(
    (expr, start.astimezone(ZoneInfo(zone)), zone) for zone in ZONES for expr, start in CASES
)
ITERATE_COUNT = 50  # fire times taken from each iterator
DISTINCT_COUNT = 6000  # more than the 4096 crontabs parse() caches


def distinct_crontabs(count: int) -> tuple[str, ...]:
    """Distinct, ordinary crontabs (no "a-a" ranges, which both libraries misread)."""
    rng = random.Random(2024)

    def field(low: int, high: int) -> str:
        first, last = sorted(rng.sample(range(low, high + 1), 2))
        return rng.choice(
            ("*", f"*/{rng.randint(2, 15)}", str(first), f"{first}-{last}", f"{first},{last}")
        )

    crontabs: dict[str, None] = {}
    while len(crontabs) < count:
        expr = " ".join((field(0, 59), field(0, 23), field(1, 28), field(1, 12), field(0, 6)))
        crontabs[expr] = None
    return tuple(crontabs)


DISTINCT = distinct_crontabs(DISTINCT_COUNT)


def ours_parse_next(expr: str, start: datetime) -> datetime:
    return schedule.parse(expr).next_after(start)


def cronsim_parse_next(expr: str, start: datetime) -> datetime:
    return next(cronsim.CronSim(expr, start))


def ours_zoned_parse_next(expr: str, start: datetime, zone: str) -> datetime:
    return schedule.parse(expr, zone).next_after(start)


def cronsim_zoned_parse_next(expr: str, start: datetime, zone: str) -> datetime:
    return next(cronsim.CronSim(expr, start)).astimezone(UTC)


def croniter_parse_next(expr: str, start: datetime) -> datetime:
    # implement_cron_bug: a day field starting with "*" makes the day rule AND, as in cron.
    return croniter.croniter(expr, start, implement_cron_bug=True).get_next(datetime)


def ours_iterate(expr: str, start: datetime, count: int) -> None:
    fire_times = schedule.parse(expr).iter_after(start)
    for _ in range(count):
        next(fire_times)


def cronsim_iterate(expr: str, start: datetime, count: int) -> None:
    fire_times = cronsim.CronSim(expr, start)
    for _ in range(count):
        next(fire_times)


def croniter_iterate(expr: str, start: datetime, count: int) -> None:
    fire_times = croniter.croniter(expr, start, implement_cron_bug=True)
    for _ in range(count):
        fire_times.get_next(datetime)


def check_agreement() -> None:
    for expr, start in CASES + tuple(zip(DISTINCT[:500], STARTS * 100, strict=False)):
        ours = ours_parse_next(expr, start)
        others = {cronsim_parse_next(expr, start), croniter_parse_next(expr, start)}
        if others != {ours}:
            raise SystemExit(f"engines disagree on {expr!r} after {start}: {ours} vs {others}")
    for expr, start, zone in ZONED_CASES:
        ours = ours_zoned_parse_next(expr, start, zone)
        theirs = cronsim_zoned_parse_next(expr, start, zone)
        if ours != theirs:
            raise SystemExit(f"engines disagree on {expr!r} after {start}: {ours} vs {theirs}")


def round_rate(run_once: Callable[[], int], seconds: float) -> float:
    """Operations per CPU second while repeating run_once for the given CPU time.

    CPU time rather than wall time, so that other processes on a shared machine do not count
    against whichever engine happens to be running.
    """
    operations, started = 0, time.process_time()
    while (elapsed := time.process_time() - started) < seconds:
        operations += run_once()
    return operations / elapsed


def parse_next_workload(parse_next: Callable[[str, datetime], datetime]) -> Callable[[], int]:
    def run_once() -> int:
        for expr, start in CASES:
            parse_next(expr, start)
        return len(CASES)

    return run_once


def distinct_parse_next_workload(
    parse_next: Callable[[str, datetime], datetime],
) -> Callable[[], int]:
    start = STARTS[2]
    position = 0

    def run_once() -> int:
        nonlocal position
        # Cycling through more crontabs than the cache holds makes every parse a miss.
        batch = DISTINCT[position : position + 200]
        position = (position + 200) % len(DISTINCT)
        for expr in batch:
            parse_next(expr, start)
        return len(batch)

    return run_once


def zoned_parse_next_workload(
    parse_next: Callable[[str, datetime, str], datetime],
) -> Callable[[], int]:
    def run_once() -> int:
        for expr, start, zone in ZONED_CASES:
            parse_next(expr, start, zone)
        return len(ZONED_CASES)

    return run_once


def iterate_workload(iterate: Callable[[str, datetime, int], None]) -> Callable[[], int]:
    def run_once() -> int:
        for expr in EXPRESSIONS:
            iterate(expr, STARTS[0], ITERATE_COUNT)
        return len(EXPRESSIONS) * ITERATE_COUNT

    return run_once


ENGINES = {
    "ours": (ours_parse_next, ours_iterate, ours_zoned_parse_next),
    "cronsim": (cronsim_parse_next, cronsim_iterate, cronsim_zoned_parse_next),
    "croniter": (croniter_parse_next, croniter_iterate, None),  # not cron's clock-change rules
}
ROUNDS = 5


def measure(seconds: float) -> dict[str, list[float | None]]:
    """Best rate of each engine and workload over a few rounds (None: not measured).

    The engines take turns within every round, so a busy spell on the machine slows all of
    them rather than skewing the ratios, and the best round is the least disturbed one.
    """
    workloads = {
        engine: (
            parse_next_workload(parse_next),
            distinct_parse_next_workload(parse_next),
            iterate_workload(iterate),
            None if zoned is None else zoned_parse_next_workload(zoned),
        )
        for engine, (parse_next, iterate, zoned) in ENGINES.items()
    }
    measured = sum(run_once is not None for runs in workloads.values() for run_once in runs)
    slice_seconds = seconds / (ROUNDS * measured)
    best: dict[str, list[float | None]] = {
        engine: [None if run_once is None else 0.0 for run_once in runs]
        for engine, runs in workloads.items()
    }
    for _ in range(ROUNDS):
        for engine, runs in workloads.items():
            for index, run_once in enumerate(runs):
                if run_once is not None:
                    rate = round_rate(run_once, slice_seconds)
                    best[engine][index] = max(best[engine][index], rate)
    return best


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--seconds", type=float, default=20.0, help="CPU seconds spent measuring (default: 20)"
    )
    seconds = parser.parse_args().seconds

    check_agreement()
    results = measure(seconds)

    print(
        f"schedule engine benchmark: {len(EXPRESSIONS)} crontabs x {len(STARTS)} start times "
        f"(repeated), {len(DISTINCT)} distinct crontabs (each parsed from scratch), "
        f"{ITERATE_COUNT} fire times per iterator; zoned: the repeated set in {', '.join(ZONES)}\n"
        f"Python {platform.python_version()}, cronsim {version('cronsim')}, "
        f"croniter {version('croniter')}"
    )
    header = ("parse+next /s", "distinct parse+next /s", "iterate /s", "zoned parse+next /s")
    print(f"{'engine':<18}" + "".join(f"{title:>25}" for title in header))
    for engine, figures in results.items():
        print(f"{engine:<18}" + "".join(_cell(figure, "{:>25,.0f}") for figure in figures))
    for other in ("cronsim", "croniter"):
        ratios = [
            None if theirs is None else ours / theirs
            for ours, theirs in zip(results["ours"], results[other], strict=True)
        ]
        print(f"{'ours / ' + other:<18}" + "".join(_cell(ratio, "{:>24.1f}x") for ratio in ratios))
    parse_next = {engine: figures[0] for engine, figures in results.items()}
    iterate = {engine: figures[2] for engine, figures in results.items()}
    zoned = {engine: figures[3] for engine, figures in results.items()}
    print(
        f"RESULT parse_next_per_s={parse_next['ours']:.0f} iterate_per_s={iterate['ours']:.0f} "
        f"zoned_parse_next_per_s={zoned['ours']:.0f} "
        f"cronsim_parse_next_per_s={parse_next['cronsim']:.0f} "
        f"cronsim_iterate_per_s={iterate['cronsim']:.0f} "
        f"cronsim_zoned_parse_next_per_s={zoned['cronsim']:.0f} "
        f"croniter_parse_next_per_s={parse_next['croniter']:.0f} "
        f"croniter_iterate_per_s={iterate['croniter']:.0f}"
    )


def _cell(figure: float | None, form: str) -> str:
    return f"{'-':>25}" if figure is None else form.format(figure)


if __name__ == "__main__":
    main()
