"""How fast are the console's pages with 10,000 functions and 1,000,000 runs?

Fills a database of its own (BENCH_CONSOLE_DATABASE_URL, default chalkweb_bench_console) with
PostgreSQL's generate_series: 10,000 functions (one in ten paused; one "hot" function with
100,000 runs and 20 versions), 1,000,000 runs with an attempt each, 2 log lines and a usage
sample per attempt, and one hour-long run with 20,000 log lines and 3,600 samples. Then it
renders each page in-process with Django's test Client, logged in as a staff user, and
reports the median and 95th percentile server time over --repeat requests and the number of
queries of one request. A page passes when its median is at most 150 ms and its query count
is the same for the hot function or the big run as for an ordinary one.

    .venv/bin/python bench/console.py [--repeat 20] [--rebuild]

The data is kept between runs (rebuilt when the counts differ or with --rebuild). The last
line is `RESULT functions_page=ms/queries function_page=… runs_page=… run_page=…`, each the
slowest variant of that page.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault(
    "BENCH_DATABASE_URL",
    os.environ.get(
        "BENCH_CONSOLE_DATABASE_URL", "postgres://postgres@127.0.0.1:5432/chalkweb_bench_console"
    ),
)
sys.path.insert(0, str(Path(__file__).resolve().parent))
from _platform import percentile, setup_django  # noqa: E402

FUNCTIONS = 10_000
RUNS = 1_000_000
HOT_EVERY = 10  # every 10th run belongs to the hot function: 100,000 runs
HOT_VERSIONS = 20
BIG_RUN_LINES = 20_000
BIG_RUN_SAMPLES = 3_600
TARGET_MS = 150.0

SOURCE = """import chalkcompute
from chalk import chalk_logger


@chalkcompute.function(schedule="0 * * * *", retries=2)
def job() -> None:
    chalk_logger.info("refreshing rates")
    for currency in ("EUR", "GBP", "JPY"):
        chalk_logger.info("fetched %s", currency)
"""


def build(cursor) -> None:
    """Fills the database in one transaction of INSERT … SELECT generate_series."""
    from chalkcompute.image import Image as ImageSpec

    spec = ImageSpec.debian_slim()
    steps = [
        (
            "emptying",
            """TRUNCATE runs_usagesample, runs_logline, runs_attempt, runs_run,
            runs_imagebuild, scheduling_functionversion, scheduling_function, scheduling_image
            RESTART IDENTITY CASCADE""",
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
            FROM generate_series(0, {FUNCTIONS - 1}) g ORDER BY g""",
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
            FROM (SELECT g AS f, 1 AS n FROM generate_series(1, {FUNCTIONS}) g
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
                         CASE WHEN g % {HOT_EVERY} = 0 THEN 1 ELSE 2 + g % {FUNCTIONS - 1} END
                             AS fid,
                         now() - interval '1 second' * 3 * ({RUNS} - g) AS slot,
                         CASE WHEN g % 100 < 4 THEN 'failed' WHEN g % 100 = 4 THEN 'timed_out'
                              WHEN g % 100 = 5 THEN 'skipped' WHEN g % 100 = 6 THEN 'cancelled'
                              ELSE 'succeeded' END AS status
                  FROM generate_series(1, {RUNS}) g) r
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


def ensure_data(rebuild: bool) -> None:
    from django.db import connection, transaction

    from runs.models import Run
    from scheduling.models import Function

    if not rebuild and Function.objects.count() == FUNCTIONS and Run.objects.count() == RUNS:
        print(f"data: {FUNCTIONS:,} functions and {RUNS:,} runs already there (--rebuild to redo)")
        return
    print(f"data: building {FUNCTIONS:,} functions and {RUNS:,} runs", flush=True)
    started = time.monotonic()
    with transaction.atomic(), connection.cursor() as cursor:
        cursor.execute("SET LOCAL synchronous_commit = off")
        build(cursor)
    with connection.cursor() as cursor:
        for table in ("scheduling_function", "scheduling_functionversion", "runs_run",
                      "runs_attempt", "runs_logline", "runs_usagesample"):  # fmt: skip
            cursor.execute(f"VACUUM ANALYZE {table}")
    print(f"data: built in {time.monotonic() - started:.0f} s", flush=True)


def pages() -> list[tuple[str, str, str, dict]]:
    """(page, variant, url, headers): an ordinary case and the heavy ones for each page."""
    from runs.models import Attempt, LogLine, Run

    big_attempt = Attempt.objects.get(log_lines=BIG_RUN_LINES + 2).id
    big_run = Attempt.objects.get(id=big_attempt).run_id
    big_last_line = LogLine.objects.filter(attempt_id=big_attempt).order_by("-id")[0].id
    ordinary_run = Run.objects.filter(function__name="fn-04242", status="failed").order_by("-id")[0]
    middle = Run.objects.order_by("-id").values_list("id", flat=True)[0] // 2
    htmx = {"HTTP_HX_REQUEST": "true"}
    return [
        ("functions_page", "first page", "/", {}),
        ("functions_page", "page after fn-05000", "/?after=fn-05000", {}),
        ("functions_page", "previous page", "/?before=fn-05000", {}),
        ("functions_page", "name filter", "/?q=fn-09", {}),
        ("functions_page", "paused only", "/?state=paused", {}),
        ("function_page", "ordinary (90 runs)", "/functions/fn-04242", {}),
        ("function_page", "hot (100k runs, 20 versions)", "/functions/fn-00000", {}),
        ("function_page", "hot, diff v1..v20", "/functions/fn-00000?from=1&to=20", {}),
        ("function_page", "hot, older runs", f"/functions/fn-00000?after={middle}", {}),
        ("runs_page", "first page", "/runs", {}),
        ("runs_page", "middle of 1M", f"/runs?after={middle}", {}),
        ("runs_page", "status=failed", "/runs?status=failed", {}),
        ("runs_page", "function=hot", "/runs?function=fn-00000", {}),
        ("runs_page", "function+status", "/runs?function=fn-04242&status=failed", {}),
        ("runs_page", "log search", "/runs?q=timeout+talking", {}),
        ("run_page", "ordinary failed run", f"/runs/{ordinary_run.id}", {}),
        ("run_page", "big run (20k lines, 1 h)", f"/runs/{big_run}", {}),
        ("run_page", "big run, level+search", f"/runs/{big_run}?level=warning&q=batch+19", {}),
        ("run_page", "live-tail poll", f"/runs/{big_run}?after={big_last_line - 5}", htmx),
    ]


def measure(client, url: str, headers: dict, repeat: int) -> tuple[float, float, int]:
    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    for _ in range(3):  # warm caches: templates, the session, PostgreSQL's buffers
        response = client.get(url, **headers)
        assert response.status_code == 200, (url, response.status_code)
    timings = []
    for _ in range(repeat):
        started = time.perf_counter()
        client.get(url, **headers)
        timings.append((time.perf_counter() - started) * 1000)
    with CaptureQueriesContext(connection) as queries:
        client.get(url, **headers)
    return statistics.median(timings), percentile(timings, 0.95), len(queries)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--repeat", type=int, default=20, help="timed requests per page")
    parser.add_argument("--rebuild", action="store_true", help="rebuild the data")
    args = parser.parse_args()
    data_dir = Path(tempfile.mkdtemp(prefix="chalk-bench-console-"))
    setup_django(data_dir)
    ensure_data(args.rebuild)

    from django.contrib.auth import get_user_model
    from django.test import Client
    from django.utils import timezone

    from access.services import Actor, role_set

    user, _ = get_user_model().objects.get_or_create(
        username="bench-operator", defaults={"is_staff": True}
    )
    # The console answers only people with a role.
    role_set(actor=Actor.platform(), user=user, role="operator", now=timezone.now())
    client = Client(HTTP_HOST="localhost")  # a host ALLOWED_HOSTS lists; "testserver" is not
    client.force_login(user)

    print(f"\n{'page':<16}{'variant':<32}{'median ms':>10}{'p95 ms':>9}{'queries':>9}")
    worst: dict[str, tuple[float, int]] = {}
    for page, variant, url, headers in pages():
        median, p95, queries = measure(client, url, headers, args.repeat)
        flag = "" if median <= TARGET_MS else "  over target"
        print(f"{page:<16}{variant:<32}{median:>10.1f}{p95:>9.1f}{queries:>9}{flag}", flush=True)
        slowest, most = worst.get(page, (0.0, 0))
        worst[page] = (max(slowest, median), max(most, queries))
    print(
        "\nRESULT "
        + " ".join(f"{page}={ms:.0f}/{queries}" for page, (ms, queries) in worst.items())
    )


if __name__ == "__main__":
    main()
