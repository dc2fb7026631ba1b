"""Does one run flooding its log delay the tick of other functions?

A run posts 200,000 log lines through the real runner API endpoint as fast as it can, from a
process of its own (as the web server would take them), while this process ticks N other
functions every TICK_SECONDS (`runs.scheduler.tick`; each tick makes their runs of the next
minute). The figure is how much longer a tick takes while the flood is stored than idle: the
slowest tick during the flood (for a flood shorter than a tick's interval, the first tick
after it began) minus the idle median.

- before: the runner API as it was (BEFORE_LOG_APPEND, the log_append it called): the whole
  flood in one request, stored with bulk_create in one transaction that holds the attempt's
  row lock (on SQLite: the whole database) throughout;
- after: heartbeats of at most protocol.MAX_HEARTBEAT_ITEMS lines (5,000), each stored
  logs.LOG_ROWS_PER_TRANSACTION rows (1,000) per transaction.

PostgreSQL when DATABASE_URL is set (on that server, in a database of the bench's own,
chalkweb_bench_log_flood, never the one the URL names), else SQLite in a fresh data folder:

    DATABASE_URL=postgres://postgres@127.0.0.1:5432/chalkweb .venv/bin/python bench/log_flood.py
    .venv/bin/python bench/log_flood.py [--functions 200] [--lines 200000]

`--functions 10 --lines 5000` is the small mode `make test` runs (tests/test_benchmarks.py).
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _platform import REPO, every_minute_functions, percentile  # noqa: E402

BENCH_DATABASE = "chalkweb_bench_log_flood"
LIMITS_MS = {"postgresql": 100, "sqlite": 1000}  # the most a flood may delay a tick
IDLE_SECONDS = 2.0
TICK_SECONDS = 0.25  # beat sends the tick every second; more often here for more samples


def bench_database_url(configured: str) -> str:
    """A database of the bench's own on the configured server, created if missing."""
    import psycopg

    server = configured.rsplit("/", 1)[0]
    with psycopg.connect(server + "/postgres", autocommit=True) as conn:
        exists = conn.execute("SELECT 1 FROM pg_database WHERE datname = %s", (BENCH_DATABASE,))
        if not exists.fetchone():
            conn.execute(f'CREATE DATABASE "{BENCH_DATABASE}"')
    return f"{server}/{BENCH_DATABASE}"


def setup_django(data_dir: Path, database_url: str | None, migrate: bool) -> None:
    os.environ["CHALK_DATA_DIR"] = str(data_dir)
    os.environ["DJANGO_SETTINGS_MODULE"] = "chalkweb.settings"
    os.environ.pop("DATABASE_URL", None)
    if database_url:
        os.environ["DATABASE_URL"] = database_url
        # Production settings want both keys given; the flooder inherits these.
        import secrets

        from cryptography.fernet import Fernet

        os.environ.setdefault("DJANGO_SECRET_KEY", secrets.token_urlsafe(50))
        os.environ.setdefault("CHALK_SECRETS_KEY", Fernet.generate_key().decode())
    sys.path.insert(0, str(REPO))
    import django

    django.setup()
    from runs import dispatch

    # No broker: the tick's wake-up messages are not what is measured.
    dispatch.wake_runs_worker = lambda **kwargs: None
    if migrate:
        from django.core.management import call_command

        call_command("migrate", interactive=False, verbosity=0)


# --- the flooding run's side: a process of its own ---------------------------------------------


def before_log_append(*, attempt, first_seq, lines, now):
    """log_append as it was (commit b1416c6, in runs/services.py): one transaction a batch."""
    from django.db import transaction

    from runs.logs import _timestamp
    from runs.models import Attempt, LogLine, LogStream

    if not lines:
        return
    with transaction.atomic():
        stored, from_runner = (
            Attempt.objects.select_for_update()
            .values_list("log_lines", "runner_lines")
            .get(id=attempt.id)
        )
        if first_seq is not None:
            lines = lines[from_runner - first_seq :]
            from_runner += len(lines)
        rows = [
            LogLine(
                attempt_id=attempt.id,
                seq=stored + offset,
                ts=_timestamp(line.get("ts"), now),
                stream=line.get("stream", LogStream.STDOUT),
                level=str(line.get("level", ""))[:8],
                text=str(line.get("text", "")),
            )
            for offset, line in enumerate(lines)
        ]
        LogLine.objects.bulk_create(rows)
        Attempt.objects.filter(id=attempt.id).update(
            log_lines=stored + len(rows), runner_lines=from_runner
        )


def flood(mode: str, token: str, lines: int, batch: int) -> None:
    """Posts `lines` lines in requests of `batch`, once told to go on stdin; prints how long."""
    from django.conf import settings
    from django.test import Client

    from chalkcompute.runtime import protocol
    from runs import logs

    if mode == "before":  # one request, one transaction: what the runner API took until now
        logs.log_append = before_log_append
        protocol.MAX_HEARTBEAT_ITEMS = lines
        settings.DATA_UPLOAD_MAX_MEMORY_SIZE = None
        batch = lines
    now = time.time()
    # 40 bytes a line: 200,000 lines are 8 MB, under the 10 MB cap, so every one is stored.
    texts = [f"flood line {i:07} " + "x" * 21 for i in range(lines)]
    bodies = [
        json.dumps(
            {
                "first_seq": start,
                "lines": [
                    {"ts": now, "stream": "stdout", "level": "", "text": text}
                    for text in texts[start : start + batch]
                ],
            }
        )
        for start in range(0, lines, batch)
    ]
    # "localhost": a host ALLOWED_HOSTS lists (the test client's "testserver" is not)
    client = Client(HTTP_HOST="localhost", HTTP_AUTHORIZATION=f"Bearer {token}")
    print("ready", flush=True)
    sys.stdin.readline()
    started = time.perf_counter()
    for body in bodies:
        response = client.post("/api/runner/v1/heartbeat", body, content_type="application/json")
        if response.status_code != 200:
            raise SystemExit(f"heartbeat answered {response.status_code}: {response.content!r}")
    print(f"done {time.perf_counter() - started:.3f}", flush=True)


# --- the tick's side -------------------------------------------------------------------------


def prepare(functions: int, start: dt.datetime) -> str:
    """Empty tables, N functions due every minute from `start`, and one claimed attempt of
    another function that floods; returns that attempt's token."""
    from django.db import connection

    from access.actor import Actor
    from runs.models import Run
    from runs.services import attempt_claim, run_trigger
    from scheduling.models import Function

    if connection.vendor == "postgresql":
        with connection.cursor() as cursor:
            cursor.execute("TRUNCATE runs_run, scheduling_function CASCADE")
    else:
        Run.objects.all().delete()
        Function.objects.all().delete()
    now = dt.datetime.now(dt.UTC)
    created = every_minute_functions(functions + 1, start)
    flooder = created[-1]
    # Not one the tick handles: no slot.
    Function.objects.filter(id=flooder.id).update(paused=True, next_fire_at=None)
    run = run_trigger(function=flooder, trigger="manual", actor=Actor.platform(), now=now)
    _, token = attempt_claim(
        attempt_id=run.attempts.get().id, executor="local", executor_ref="bench", now=now
    )
    return token


def measure(mode: str, args, data_dir: Path, database_url: str | None) -> dict:
    from django.db import connection

    from runs.models import LogLine
    from runs.scheduler import tick

    start = dt.datetime(2030, 1, 1, tzinfo=dt.UTC)
    token = prepare(args.functions, start)
    env = {**os.environ, "CHALK_DATA_DIR": str(data_dir)}
    env.pop("DATABASE_URL", None)
    if database_url:
        env["DATABASE_URL"] = database_url
    flooder = subprocess.Popen(
        [sys.executable, __file__, "--flood", mode, "--token", token, "--lines", str(args.lines)],
        cwd=REPO, env=env, stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True,
    )  # fmt: skip
    assert flooder.stdout.readline().strip() == "ready", "the flooder did not start"
    ticks: list[tuple[float, float]] = []  # (start, end), perf_counter
    stop = threading.Event()

    def ticking() -> None:
        minute = 0
        try:
            while not stop.wait(TICK_SECONDS - (time.perf_counter() % TICK_SECONDS)):
                began = time.perf_counter()
                tick(now=start + dt.timedelta(minutes=minute))
                ticks.append((began, time.perf_counter()))
                minute += 1
        finally:
            connection.close()

    ticker = threading.Thread(target=ticking)
    ticker.start()
    time.sleep(IDLE_SECONDS)
    flood_began = time.perf_counter()
    flooder.stdin.write("go\n")
    flooder.stdin.flush()
    done = flooder.stdout.readline().split()
    flood_ended = time.perf_counter()
    time.sleep(0.5)
    stop.set()
    ticker.join()
    if flooder.wait(timeout=60) != 0 or not done or done[0] != "done":
        raise SystemExit(f"the {mode} flood failed")
    idle = [(end - began) * 1000 for began, end in ticks if end < flood_began]
    during = [
        (end - began) * 1000 for began, end in ticks if began < flood_ended and end > flood_began
    ]
    if not during:  # a flood shorter than a tick's interval: the first tick after it began
        during = [(end - began) * 1000 for began, end in ticks if began >= flood_began][:1]
    if not during:
        raise SystemExit(f"the {mode} flood: no tick ran after it began")
    stored = LogLine.objects.count()
    assert stored == args.lines, f"{stored} lines stored of {args.lines}"
    idle_p50 = percentile(idle, 0.5)
    return {
        "idle_p50": idle_p50,
        "during_p50": percentile(during, 0.5),
        "during_max": max(during),
        "delay": max(during) - idle_p50,
        "ticks": len(during),
        "flood_s": float(done[1]),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--functions", type=int, default=200)
    parser.add_argument("--lines", type=int, default=200_000)
    parser.add_argument("--flood", choices=("before", "after"), help=argparse.SUPPRESS)
    parser.add_argument("--token", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.flood:  # the flooding process: same database, same data folder
        setup_django(Path(os.environ["CHALK_DATA_DIR"]), os.environ.get("DATABASE_URL"), False)
        from chalkcompute.runtime import protocol

        flood(args.flood, args.token, args.lines, protocol.MAX_HEARTBEAT_ITEMS)
        return
    configured = os.environ.get("DATABASE_URL")
    database_url = bench_database_url(configured) if configured else None
    data_dir = Path(tempfile.mkdtemp(prefix="chalkweb-bench-"))
    setup_django(data_dir, database_url, True)
    from django.db import connection

    from chalkcompute.runtime import protocol
    from runs import logs

    vendor = connection.vendor
    print(
        f"{vendor}: {args.functions} functions ticked while one run posts {args.lines} lines",
        flush=True,
    )
    results = {mode: measure(mode, args, data_dir, database_url) for mode in ("before", "after")}
    before, after = results["before"], results["after"]
    rows = {
        "before: 1 request, 1 transaction": before,
        f"after: {protocol.MAX_HEARTBEAT_ITEMS}/request, "
        f"{logs.LOG_ROWS_PER_TRANSACTION}/transaction": after,
    }
    print(
        f"\n{'':44}{'idle ms':>9}{'flood p50':>11}{'flood max':>11}{'delay ms':>10}"
        f"{'ticks':>7}{'flood s':>9}"
    )
    for name, r in rows.items():
        print(
            f"{name:44}{r['idle_p50']:>9.1f}{r['during_p50']:>11.1f}{r['during_max']:>11.1f}"
            f"{r['delay']:>10.1f}{r['ticks']:>7}{r['flood_s']:>9.2f}"
        )
    ratio = before["delay"] / max(after["delay"], 0.1)
    limit = LIMITS_MS[vendor]
    print(f"\ndelay of a tick by the flood: before / after = {ratio:.1f}x (limit {limit} ms)")
    print(
        f"RESULT database={vendor} functions={args.functions} lines={args.lines} "
        f"before_delay_ms={before['delay']:.0f} after_delay_ms={after['delay']:.0f} "
        f"ratio={ratio:.1f} limit_ms={limit} within_limit={after['delay'] < limit}"
    )


if __name__ == "__main__":
    main()
