"""The data the console and /metrics benchmarks measure: 10,000 functions (one in ten
paused; one "hot" function with 100,000 runs and 20 versions), 1,000,000 runs with an attempt
each, 2 log lines and a usage sample per attempt, one hour-long run with 20,000 log lines and
3,600 samples, and the finished-run counters those runs would have left. Built with
PostgreSQL's generate_series in a database of its own (BENCH_CONSOLE_DATABASE_URL, default
chalkweb_bench_console), kept between runs, and rebuilt when the counts differ."""

from __future__ import annotations

import os
import sys
import time
from pathlib import Path

os.environ.setdefault(
    "BENCH_DATABASE_URL",
    os.environ.get(
        "BENCH_CONSOLE_DATABASE_URL", "postgres://postgres@127.0.0.1:5432/chalkweb_bench_console"
    ),
)
sys.path.insert(0, str(Path(__file__).resolve().parent))
from _platform import setup_django  # noqa: E402, F401 - with this module's database

FUNCTIONS = 10_000
RUNS = 1_000_000
HOT_EVERY = 10  # every 10th run belongs to the hot function: 100,000 runs
HOT_VERSIONS = 20
BIG_RUN_LINES = 20_000
BIG_RUN_SAMPLES = 3_600

SOURCE = """import chalkcompute
from chalk import chalk_logger


@chalkcompute.function(schedule="0 * * * *", retries=2)
def job() -> None:
    chalk_logger.info("refreshing rates")
    for currency in ("EUR", "GBP", "JPY"):
        chalk_logger.info("fetched %s", currency)
"""


def build(cursor, functions: int = FUNCTIONS, runs: int = RUNS) -> None:
    """Fills the database in one transaction of INSERT … SELECT generate_series."""
    from chalkcompute.image import Image as ImageSpec
    from runs.counts import SHARDS

    spec = ImageSpec.debian_slim()
    steps = [
        (
            "emptying",
            """TRUNCATE runs_usagesample, runs_logline, runs_attempt, runs_run,
            runs_imagebuild, runs_finishedruns, scheduling_functionversion, scheduling_function,
            scheduling_image RESTART IDENTITY CASCADE""",
        ),
        (
            "image",
            "INSERT INTO scheduling_image (spec, spec_hash, created_at) "
            f"VALUES ('{spec.canonical_json}', '{spec.spec_hash}', now())",
        ),
        (
            "functions",
            f"""INSERT INTO scheduling_function (name, next_fire_at, paused, paused_at,
            paused_by, paused_reason, created_at, updated_at)
            SELECT 'fn-' || lpad(g::text, 5, '0'),
                   CASE WHEN g % 10 = 9 THEN NULL
                        ELSE date_trunc('hour', now()) + interval '1 hour' END,
                   g % 10 = 9, CASE WHEN g % 10 = 9 THEN now() END,
                   CASE WHEN g % 10 = 9 THEN 'bench' ELSE '' END,
                   CASE WHEN g % 10 = 9 THEN 'paused by the benchmark' ELSE '' END,
                   now(), now()
            FROM generate_series(0, {functions - 1}) g ORDER BY g""",
        ),
        # Version 1 of function n has id n (both numbered in name order); the hot function
        # fn-00000 (id 1) gets versions 2..HOT_VERSIONS after them.
        (
            "versions",
            f"""INSERT INTO scheduling_functionversion (function_id, number, source,
            source_filename, source_sha256, entrypoint, image_id, schedule, cron, cpu, memory,
            gpu, retries, timeout, overlap, secret_names, content_hash, created_by, created_at,
            env, tags, alerts)
            SELECT f, n, %(source)s || repeat(E'\\n# revision ' || n, n), 'job.py',
                   md5(f::text || '.' || n), 'job', 1, '0 * * * *', '0 * * * *', '1', '1Gi',
                   NULL, '{{"max_retries": 2, "backoff_coefficient": 2.0, "initial_delay": 1.0,
                   "max_delay": 60.0}}', 600, 'skip', '[]', md5(n::text), 'bench',
                   now() - (interval '1 day' * ({HOT_VERSIONS} - n)), '{{}}', '{{}}',
                   '{{"on_failure": [], "after_failures": null, "on_recovery": null,
                   "late_after": null, "running_after": null, "on_skip": null,
                   "remind_every": null}}'
            FROM (SELECT g AS f, 1 AS n FROM generate_series(1, {functions}) g
                  UNION ALL SELECT 1, n FROM generate_series(2, {HOT_VERSIONS}) n) v
            ORDER BY n, f""",
        ),
        (
            "current versions",
            """UPDATE scheduling_function f SET current_version_id = v.id
            FROM (SELECT function_id, max(id) AS id FROM scheduling_functionversion
                  GROUP BY function_id) v WHERE v.function_id = f.id""",
        ),
        # Newest run = highest id = latest slot; runs of all functions interleave in time.
        (
            "runs",
            f"""INSERT INTO runs_run (function_id, version_id, trigger, triggered_by,
            scheduled_for, status, status_reason, missed_slots, created_at, started_at,
            finished_at, peak_memory_bytes, cpu_seconds)
            SELECT fid, fid, 'schedule', '', slot, status,
                   CASE status WHEN 'failed' THEN 'RuntimeError: rates service unavailable'
                               WHEN 'timed_out' THEN 'timed out after 600 seconds'
                               WHEN 'skipped' THEN 'the previous run was still active'
                               ELSE '' END,
                   CASE WHEN g % 997 = 0 THEN 3 ELSE 0 END,
                   slot, CASE WHEN status <> 'skipped' THEN slot END,
                   CASE WHEN status <> 'skipped' THEN slot + interval '12 seconds' END,
                   CASE WHEN status <> 'skipped' THEN 40000000 + (g % 1000) * 10000 END,
                   CASE WHEN status <> 'skipped' THEN 1.5 END
            FROM (SELECT g,
                         CASE WHEN g % {HOT_EVERY} = 0 THEN 1 ELSE 2 + g % {functions - 1} END
                             AS fid,
                         now() - interval '1 second' * 3 * ({runs} - g) AS slot,
                         CASE WHEN g % 100 < 4 THEN 'failed' WHEN g % 100 = 4 THEN 'timed_out'
                              WHEN g % 100 = 5 THEN 'skipped' WHEN g % 100 = 6 THEN 'cancelled'
                              ELSE 'succeeded' END AS status
                  FROM generate_series(1, {runs}) g) r
            ORDER BY g""",
        ),
        (
            "attempts",
            """INSERT INTO runs_attempt (run_id, number, status, not_before,
            dispatched_at, created_at, started_at, finished_at, last_heartbeat_at, executor,
            executor_ref, exit_code, error_type, error_message, traceback, reason,
            peak_memory_bytes, cpu_seconds, log_lines, runner_lines)
            SELECT id, 1, status, scheduled_for, scheduled_for, scheduled_for, started_at,
                   finished_at, finished_at, 'local', 'bench@worker',
                   CASE status WHEN 'succeeded' THEN 0 ELSE 1 END,
                   CASE status WHEN 'failed' THEN 'RuntimeError' ELSE '' END,
                   CASE status WHEN 'failed' THEN 'rates service unavailable' ELSE '' END,
                   CASE status WHEN 'failed' THEN E'Traceback (most recent call last):\\n'
                        || E'  File "job.py", line 9, in job\\nRuntimeError' ELSE '' END,
                   '', peak_memory_bytes, cpu_seconds, 2, 2
            FROM runs_run WHERE status <> 'skipped' ORDER BY id""",
        ),
        # One attempt in 5,000 logs the text the cross-run search looks for.
        (
            "log lines",
            """INSERT INTO runs_logline (attempt_id, seq, ts, stream, level, text)
            SELECT a.id, s, a.started_at + interval '1 second' * s, 'stdout',
                   CASE s WHEN 0 THEN 'INFO' ELSE 'WARNING' END,
                   CASE WHEN s = 1 AND a.id % 5000 = 0
                        THEN 'upstream timeout talking to rates-api'
                        ELSE 'fetched ' || (a.id % 97) || ' rates from the exchange' END
            FROM runs_attempt a CROSS JOIN generate_series(0, 1) s ORDER BY a.id, s""",
        ),
        (
            "usage samples",
            """INSERT INTO runs_usagesample (attempt_id, ts, cpu_seconds,
            cpu_percent, rss_bytes)
            SELECT id, finished_at, cpu_seconds, 12.5, peak_memory_bytes FROM runs_attempt
            ORDER BY id""",
        ),
        # What the platform would have counted as these runs ended (runs/counts.py).
        (
            "finished counts",
            f"""INSERT INTO runs_finishedruns (status, shard, count)
            SELECT status, function_id % {SHARDS}, count(*) FROM runs_run
            WHERE status NOT IN ('queued', 'starting', 'running', 'retrying')
            GROUP BY 1, 2""",
        ),
    ]
    for title, sql in steps:
        started = time.monotonic()
        cursor.execute(sql, {"source": SOURCE} if "%(source)s" in sql else None)
        print(f"  {title:<18} {time.monotonic() - started:6.1f} s", flush=True)

    # The big run: the hot function's newest successful run lasted an hour and logged a lot.
    started = time.monotonic()
    cursor.execute("""SELECT a.id, a.run_id FROM runs_attempt a JOIN runs_run r ON r.id = a.run_id
        WHERE r.function_id = 1 AND r.status = 'succeeded' ORDER BY a.id DESC LIMIT 1""")
    attempt_id, run_id = cursor.fetchone()
    cursor.execute(
        f"""INSERT INTO runs_logline (attempt_id, seq, ts, stream, level, text)
        SELECT %(attempt)s, 2 + s,
               now() - interval '1 hour' + interval '1 second' * s * 3600 / {BIG_RUN_LINES},
               'stdout', CASE WHEN s %% 50 = 0 THEN 'WARNING' ELSE 'INFO' END,
               'processed batch ' || s || ' of {BIG_RUN_LINES}'
        FROM generate_series(0, {BIG_RUN_LINES - 1}) s""",
        {"attempt": attempt_id},
    )
    cursor.execute(
        f"""INSERT INTO runs_usagesample (attempt_id, ts, cpu_seconds, cpu_percent, rss_bytes)
        SELECT %(attempt)s, now() - interval '1 hour' + interval '1 second' * s, s * 0.6, 60,
               200000000 + (s %% 600) * 100000
        FROM generate_series(0, {BIG_RUN_SAMPLES - 1}) s""",
        {"attempt": attempt_id},
    )
    cursor.execute(
        """UPDATE runs_run SET started_at = now() - interval '1 hour', finished_at = now()
        WHERE id = %(run)s""",
        {"run": run_id},
    )
    cursor.execute(
        "UPDATE runs_attempt SET log_lines = %(lines)s, runner_lines = %(lines)s, "
        "started_at = now() - interval '1 hour', finished_at = now() WHERE id = %(attempt)s",
        {"attempt": attempt_id, "lines": BIG_RUN_LINES + 2},
    )
    print(f"  {'big run':<18} {time.monotonic() - started:6.1f} s", flush=True)


def ensure_data(rebuild: bool, functions: int = FUNCTIONS, runs: int = RUNS) -> None:
    """Builds the data unless a database with these counts is there (bench/metrics.py uses the
    same data)."""
    from django.db import connection, transaction

    from runs.models import Run
    from scheduling.models import Function

    if not rebuild and Function.objects.count() == functions and Run.objects.count() == runs:
        print(f"data: {functions:,} functions and {runs:,} runs already there (--rebuild to redo)")
        return
    print(f"data: building {functions:,} functions and {runs:,} runs", flush=True)
    started = time.monotonic()
    with transaction.atomic(), connection.cursor() as cursor:
        cursor.execute("SET LOCAL synchronous_commit = off")
        build(cursor, functions, runs)
    with connection.cursor() as cursor:
        for table in ("scheduling_function", "scheduling_functionversion", "runs_run",
                      "runs_attempt", "runs_logline", "runs_usagesample",
                      "runs_finishedruns"):  # fmt: skip
            cursor.execute(f"VACUUM ANALYZE {table}")
    print(f"data: built in {time.monotonic() - started:.0f} s", flush=True)
