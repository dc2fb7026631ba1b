"""Does a mix of time zones slow the tick? N functions due on one slot, their schedules read
in UTC, beside the same N functions and schedules spread over ten zones: the tick that turns
them all into runs (and works out each one's next slot), timed in this process.

    BENCH_DATABASE_URL=postgres://…/chalkweb_bench BENCH_BROKER_URL=redis://…/14 \
        .venv/bin/python bench/zoned_tick.py --functions 100000 [--repeat 3]

`--functions 200 --repeat 1` is the small mode `make test` runs (tests/test_benchmarks.py).
"""

from __future__ import annotations

import argparse
import datetime as dt
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _platform import every_minute_functions, purge_broker, setup_django  # noqa: E402

# Schedules of every kind (fixed-time, wildcard, shorthand's crontabs, day rules) and zones of
# every kind (with and without daylight saving time, half- and quarter-hour offsets, south).
CRONS = [
    "0 9 * * 1-5", "30 2 * * *", "*/15 * * * *", "0 */6 * * *", "15 3 1 * *",
    "0 0 * * *", "*/10 * * * *", "45 23 * * 0", "0 * * * *", "5 4 * * 1,3,5",
]  # fmt: skip
ZONES = [
    "Europe/Berlin", "America/New_York", "Asia/Kolkata", "Australia/Lord_Howe",
    "Pacific/Chatham", "Asia/Kathmandu", "America/Sao_Paulo", "Europe/London",
    "Asia/Tokyo", "America/Los_Angeles",
]  # fmt: skip
SLOT = dt.datetime(2027, 3, 28, 1, 0, tzinfo=dt.UTC)  # Europe's clocks change this hour


def prepare(count: int) -> None:
    """N functions, schedule i % 10 each (the zone is set per measurement)."""
    from django.db import connection

    with connection.cursor() as cursor:
        cursor.execute("TRUNCATE scheduling_function, scheduling_functionversion CASCADE")
    every_minute_functions(count, None)
    with connection.cursor() as cursor:
        cursor.execute(
            "UPDATE scheduling_functionversion SET cron = (%s::text[])[function_id %% 10 + 1]",
            [CRONS],
        )


def due_tick_seconds(zoned: bool) -> float:
    """Every function due on SLOT, in UTC or in zone i % 10; the tick that makes their runs."""
    from django.db import connection

    from runs.scheduler import tick

    with connection.cursor() as cursor:
        cursor.execute("TRUNCATE runs_run CASCADE")
        cursor.execute(
            "UPDATE scheduling_functionversion SET timezone = "
            + ("(%s::text[])[function_id %% 10 + 1]" if zoned else "NULL"),
            [ZONES] if zoned else [],
        )
        cursor.execute("UPDATE scheduling_function SET next_fire_at = %s", [SLOT])
        cursor.execute("VACUUM ANALYZE scheduling_function")
    purge_broker()
    started = time.perf_counter()
    made = tick(now=SLOT).runs
    elapsed = time.perf_counter() - started
    with connection.cursor() as cursor:
        cursor.execute("SELECT count(*) FROM scheduling_function WHERE next_fire_at <= %s", [SLOT])
        assert (made, cursor.fetchone()[0]) == (count_functions(), 0), "a slot was not handled"
    return elapsed


def count_functions() -> int:
    from scheduling.models import Function

    return Function.objects.count()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--functions", type=int, default=10_000)
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()
    setup_django(Path(tempfile.mkdtemp(prefix="chalkweb-bench-")))
    prepare(args.functions)

    utc, zoned = [], []
    for _ in range(args.repeat):  # alternated, so drift in the machine's load hits both
        utc.append(due_tick_seconds(zoned=False))
        zoned.append(due_tick_seconds(zoned=True))
    best_utc, best_zoned = min(utc), min(zoned)
    print(f"tick making {args.functions:,} runs, best of {args.repeat}:")
    print(f"  10 zones  {best_zoned:8.3f} s")
    print(f"  all UTC   {best_utc:8.3f} s   (zoned / UTC: {best_zoned / best_utc:.2f}x)")
    print(
        f"RESULT functions={args.functions} utc_s={best_utc:.3f} zoned_s={best_zoned:.3f} "
        f"ratio={best_zoned / best_utc:.3f}"
    )


if __name__ == "__main__":
    main()
