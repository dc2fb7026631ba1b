"""How late are runs at scale? Chalkweb's tick with its growing lookahead, beside the fixed
five-second lookahead it replaced and one django-celery-beat task per function.

N functions run every minute. For Chalkweb, beat and the control worker run as `make run`
starts them, with a no-op executor (no runs worker; the bench ends each run as it appears),
and the bench records when each run's row appeared relative to its slot — negative means the
run was ready before its slot (the tick creates runs ahead). It runs twice in the same
conditions: with the fixed lookahead (CHALK_TICK_MAX_LOOKAHEAD_SECONDS=5, the tick before the
lookahead grew) and with the default, growing one. It also times the tick in this process
when nothing is due yet (the common second), in both modes. For the beat baseline, stock
django-celery-beat 2.9 runs with one PeriodicTask per function on a `* * * * *` crontab, and
the lag is from the minute boundary to the message sent, read from beat's log. All are
watched over the same number of minutes; missed = slots with no run (or no message).

    BENCH_DATABASE_URL=postgres://…/chalkweb_bench BENCH_BROKER_URL=redis://…/14 \
        .venv/bin/python bench/scheduler.py --functions 10000 [--minutes 2] [--no-beat]

`--functions 20 --minutes 1 --no-beat --lead 5 --tail 5` is the small mode `make test` runs
(tests/test_benchmarks.py): a minute or two, as each lookahead waits for its own minute. The
last line is `RESULT functions=… fixed_p50_s=… fixed_p99_s=… fixed_missed=…
fixed_duplicates=… growing_p50_s=… growing_p99_s=… growing_missed=… growing_duplicates=…
idle_tick_ms_fixed=… idle_tick_ms_growing=…` (and `beat_p99_s=… beat_missed=…` with beat).
"""

from __future__ import annotations

import argparse
import datetime as dt
import os
import re
import subprocess
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _platform import (  # noqa: E402
    REPO,
    every_minute_functions,
    percentile,
    purge_broker,
    setup_django,
)


def next_minute(moment: dt.datetime) -> dt.datetime:
    return moment.replace(second=0, microsecond=0) + dt.timedelta(minutes=1)


def create_functions(count: int, lead: float) -> dt.datetime:
    """N every-minute functions, due at the first minute at least `lead` seconds after they
    exist (made first, then given their slot: at 100,000 making them takes a minute); 65 s
    leaves the tick a whole minute of lookahead before even the first slot, as every later one
    has. Returns the slot."""
    from django.db import connection

    from scheduling.models import Function

    with connection.cursor() as cursor:
        # The runs and attempts of an earlier measurement go too: a delete of 200,000 runs
        # would take minutes, and this measurement starts on the tables the first one had.
        cursor.execute("TRUNCATE scheduling_function, scheduling_functionversion CASCADE")
    every_minute_functions(count, None)
    first_slot = next_minute(dt.datetime.now(dt.UTC) + dt.timedelta(seconds=lead))
    Function.objects.update(next_fire_at=first_slot)
    return first_slot


# The two lookaheads compared: the environment of the control worker (which runs the tick).
MODES = {"fixed": {"CHALK_TICK_MAX_LOOKAHEAD_SECONDS": "5"}, "growing": {}}


def start(name: str, args: list[str], data_dir: Path, env: dict | None = None) -> subprocess.Popen:
    log = open(data_dir / f"{name}.log", "w")
    return subprocess.Popen(
        [sys.executable, "-m", "celery", "-A", "chalkweb", *args],
        cwd=REPO, stdout=log, stderr=subprocess.STDOUT, env=env,
    )  # fmt: skip


def mode_env(mode: str) -> dict:
    env = {k: v for k, v in os.environ.items() if k != "CHALK_TICK_MAX_LOOKAHEAD_SECONDS"}
    return env | MODES[mode]


_END_QUEUED_RUNS = """
WITH ended AS (
    UPDATE runs_run SET status = 'succeeded', finished_at = now() WHERE status = 'queued'
    RETURNING scheduled_for
)
SELECT scheduled_for, count(*) FROM ended GROUP BY scheduled_for
"""


def measure_chalkweb(
    count: int, minutes: int, data_dir: Path, mode: str, lead: float, tail: float
) -> dict:
    """Beat and the control worker (two processes) as `make run` starts them; the bench
    watches the runs table every 50 ms and takes first sight of a row as its commit time."""
    from django.db import connection

    from runs.beat import ensure_periodic_tasks
    from runs.models import Run

    first_slot = create_functions(count, lead)
    ensure_periodic_tasks()
    slots = [first_slot + dt.timedelta(minutes=m) for m in range(minutes)]
    print(
        f"chalkweb, {mode} lookahead: {count} functions, slots {slots[0]:%H:%M}..{slots[-1]:%H:%M}"
        " UTC",
        flush=True,
    )
    processes = [
        start(
            f"control-worker-{mode}",
            ["worker", "-Q", "chalk-control", "-c", "2", "--loglevel", "WARNING"],
            data_dir,
            mode_env(mode),
        ),
        start(
            f"beat-{mode}",
            ["beat", "--loglevel", "WARNING", "--pidfile", str(data_dir / f"beat-{mode}.pid")],
            data_dir,
        ),
    ]
    lags: dict[dt.datetime, list[float]] = {slot: [] for slot in slots}
    try:
        while dt.datetime.now(dt.UTC) < slots[-1] + dt.timedelta(seconds=tail):
            # The no-op executor: each run ends as it is first seen, so the next slot is not
            # skipped as overlapping a run still active; one statement, counted per slot in
            # the database, so the watcher does not steal the tick's CPU, and a run committed
            # after a later one (two ticks at once) is still seen.
            with connection.cursor() as cursor:
                cursor.execute(_END_QUEUED_RUNS)
                fresh = cursor.fetchall()
            seen = time.time()
            for slot, n in fresh:
                if slot in lags:  # not the slot after the last, which a tick may start on
                    lags[slot].extend([seen - slot.timestamp()] * n)
            time.sleep(0.05)
    finally:
        for process in processes:
            process.terminate()
        for process in processes:
            process.wait(timeout=30)
    per_slot = Counter(
        Run.objects.filter(scheduled_for__in=slots).values_list("function_id", "scheduled_for")
    )
    skipped = Run.objects.filter(scheduled_for__in=slots, status="skipped").count()
    purge_broker()
    return {
        "lags": [lag for slot in slots for lag in lags[slot]],
        "per_slot": lags,
        "missed": count * minutes - len(per_slot),
        "duplicates": sum(n - 1 for n in per_slot.values()),
        "skipped": skipped,
    }


BEAT_LINE = re.compile(
    r"^\[(\d{4}-\d\d-\d\d \d\d:\d\d:\d\d,\d{3}): INFO/MainProcess\] "
    r"Scheduler: Sending due task bench-(\d+) "
)


def measure_baseline(count: int, minutes: int, data_dir: Path) -> dict:
    from django_celery_beat.models import CrontabSchedule, PeriodicTask, PeriodicTasks

    PeriodicTask.objects.filter(name__startswith="bench-").delete()
    crontab, _ = CrontabSchedule.objects.get_or_create(
        minute="*", hour="*", day_of_month="*", month_of_year="*", day_of_week="*", timezone="UTC"
    )
    PeriodicTask.objects.bulk_create(
        PeriodicTask(name=f"bench-{i}", task="bench.noop", crontab=crontab) for i in range(count)
    )
    PeriodicTasks.update_changed()
    # Chalkweb's own periodic tasks stay off: the baseline is beat and its N tasks alone.
    PeriodicTask.objects.filter(name__startswith="chalkweb:").update(enabled=False)
    log_path = data_dir / "baseline-beat.log"
    first_slot = next_minute(dt.datetime.now(dt.UTC) + dt.timedelta(seconds=20))
    slots = [first_slot + dt.timedelta(minutes=m) for m in range(minutes)]
    print(
        f"baseline: {count} PeriodicTasks, slots {slots[0]:%H:%M}..{slots[-1]:%H:%M} UTC",
        flush=True,
    )
    with open(log_path, "w") as log:
        beat = subprocess.Popen(
            [sys.executable, "-m", "celery", "-A", "chalkweb", "beat", "-S", "django",
             "--loglevel", "INFO",
             "--pidfile", str(data_dir / "baseline-beat.pid")],
            cwd=REPO, stdout=log, stderr=subprocess.STDOUT,
        )  # fmt: skip
        try:
            while dt.datetime.now(dt.UTC) < slots[-1] + dt.timedelta(seconds=59):
                time.sleep(1)
        finally:
            beat.terminate()
            beat.wait(timeout=30)
    PeriodicTask.objects.filter(name__startswith="bench-").delete()
    PeriodicTask.objects.filter(name__startswith="chalkweb:").update(enabled=True)
    purge_broker()
    lags: list[float] = []
    sent_per_slot: Counter = Counter()
    for line in log_path.read_text().splitlines():
        match = BEAT_LINE.match(line)
        if not match:
            continue
        sent = dt.datetime.strptime(match[1], "%Y-%m-%d %H:%M:%S,%f").replace(tzinfo=dt.UTC)
        slot = max((s for s in slots if s <= sent), default=None)
        if slot is None:
            continue
        sent_per_slot[slot] += 1
        lags.append((sent - slot).total_seconds())
    return {"lags": lags, "missed": sum(max(0, count - sent_per_slot[s]) for s in slots)}


def idle_tick_ms(mode: str, repeat: int = 200) -> float:
    """The tick in this process, nothing due within a minute (all N functions' next slot is
    later): its cost every second between slots. Milliseconds, the median of `repeat`."""
    from django.db.models import Min
    from django.test.utils import override_settings

    from runs import scheduler
    from scheduling.models import Function

    first = Function.objects.aggregate(first=Min("next_fire_at"))["first"]
    now = first - dt.timedelta(seconds=90)
    overrides = {k: int(v) for k, v in MODES[mode].items()}
    times = []
    with override_settings(**overrides):
        for _ in range(repeat):
            started = time.perf_counter()
            assert scheduler.tick(now=now).runs == 0
            times.append((time.perf_counter() - started) * 1000)
    return percentile(times, 0.5)


def compare(before: float, after: float) -> str:
    """How `after` compares with `before`, both seconds from the slot (negative: ahead)."""
    if before > 0 and after > 0:
        ratio = before / after
        return f"{ratio:.1f}x less late" if ratio >= 1 else f"{1 / ratio:.1f}x later"
    if after <= 0 < before:
        return f"{before - after:.1f} s earlier (ready before the slot instead of late)"
    if before <= 0 < after:
        return f"{after - before:.1f} s later (late instead of ready before the slot)"
    return f"{before - after:.1f} s earlier" if after <= before else f"{after - before:.1f} s later"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--functions", type=int, default=1000)
    parser.add_argument("--minutes", type=int, default=2)
    parser.add_argument(
        "--lead", type=float, default=65, help="seconds at least from the set-up to the first slot"
    )
    parser.add_argument(
        "--tail", type=float, default=55, help="seconds the runs are watched after the last slot"
    )
    parser.add_argument(
        "--no-beat", "--no-baseline", dest="no_beat", action="store_true",
        help="leave out django-celery-beat with one task per function (slow at scale)",
    )  # fmt: skip
    parser.add_argument(
        "--modes", default="fixed,growing",
        help="the lookaheads measured, in this order (repeat the run reversed to see drift)",
    )  # fmt: skip
    args = parser.parse_args()
    modes = args.modes.split(",")
    assert sorted(modes) == sorted(MODES), f"--modes: both of {', '.join(MODES)}"
    data_dir = Path(tempfile.mkdtemp(prefix="chalkweb-bench-"))
    setup_django(data_dir)
    purge_broker()

    rows, idle = {}, {}
    for mode in modes:
        rows[mode] = measure_chalkweb(
            args.functions, args.minutes, data_dir, mode, args.lead, args.tail
        )
        idle[mode] = idle_tick_ms(mode)

    def figures(lags: list[float]) -> tuple[float, float, float]:
        return percentile(lags, 0.5), percentile(lags, 0.99), max(lags, default=float("nan"))

    print(f"\n{'':28}{'p50 s':>10}{'p99 s':>10}{'max s':>10}{'missed':>10}{'dup':>6}")
    for mode in MODES:
        ours = rows[mode]
        p50, p99, worst = figures(ours["lags"])
        print(
            f"{'chalkweb, ' + mode + ' lookahead':28}{p50:>10.3f}{p99:>10.3f}{worst:>10.3f}"
            f"{ours['missed']:>10}{ours['duplicates']:>6}"
            + (f"  ({ours['skipped']} skipped)" if ours["skipped"] else "")
        )
        for index, slot_lags in enumerate(ours["per_slot"].values()):
            first = min(slot_lags, default=float("nan"))
            p50, p99, worst = figures(slot_lags)
            print(
                f"{'  slot ' + str(index + 1) + ' (first seen ' + f'{first:+.1f} s)':28}"
                f"{p50:>10.3f}{p99:>10.3f}{worst:>10.3f}"
            )
    (f50, f99, _), (g50, g99, _) = figures(rows["fixed"]["lags"]), figures(rows["growing"]["lags"])
    result = (
        f"RESULT functions={args.functions} fixed_p50_s={f50:.3f} fixed_p99_s={f99:.3f} "
        f"fixed_missed={rows['fixed']['missed']} fixed_duplicates={rows['fixed']['duplicates']} "
        f"growing_p50_s={g50:.3f} growing_p99_s={g99:.3f} "
        f"growing_missed={rows['growing']['missed']} "
        f"growing_duplicates={rows['growing']['duplicates']} "
        f"idle_tick_ms_fixed={idle['fixed']:.2f} idle_tick_ms_growing={idle['growing']:.2f}"
    )
    if not args.no_beat:
        base = measure_baseline(args.functions, args.minutes, data_dir)
        b50, b99 = percentile(base["lags"], 0.5), percentile(base["lags"], 0.99)
        print(
            f"{'beat, 1 task/function':28}{b50:>10.3f}{b99:>10.3f}"
            f"{max(base['lags'], default=float('nan')):>10.3f}{base['missed']:>10}"
        )
        result += f" beat_p99_s={b99:.3f} beat_missed={base['missed']}"
    print(f"\ngrowing vs. fixed lookahead: p50 {compare(f50, g50)}, p99 {compare(f99, g99)}")
    print(
        f"tick with nothing due (median of 200): fixed {idle['fixed']:.2f} ms, growing "
        f"{idle['growing']:.2f} ms ({idle['growing'] / idle['fixed']:.2f}x)"
    )
    print(result)


if __name__ == "__main__":
    main()
