"""How long does one scrape of /metrics take, and how big is it, with 10,000 functions and
1,000,000 runs?

The data is bench/console.py's (its database, BENCH_CONSOLE_DATABASE_URL, built by its
builder when the counts differ). Baseline: the scrape as it was, with every run counted from
the runs table by function and status (BEFORE_RUNS_QUERY, the `chalk_runs{function,status}`
gauge) on top of today's scrape, so the baseline pays today's few milliseconds too. Against
it: today's scrape (`GET /metrics`: counters of finished runs, active runs, per function only
while a function has an active run). Each is timed over --repeat scrapes in this process,
after one to warm PostgreSQL's buffers; the figures are the medians and the body's size.

    .venv/bin/python bench/metrics.py [--functions 10000] [--runs 1000000] [--repeat 10]

`--functions 100 --runs 10000 --repeat 2` is the small mode `make test` runs
(tests/test_benchmarks.py). The last line is
`RESULT functions=… runs=… before_ms=… before_bytes=… after_ms=… after_bytes=… ms_ratio=…
bytes_ratio=…`.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
# _history sets the benchmark database (the console benchmark's) before _platform reads it.
from _history import FUNCTIONS, RUNS, ensure_data, setup_django  # noqa: E402

# The gauge /metrics computed before runs were counted as they ended: every run the database
# holds, by function and status, read on every scrape.
BEFORE_RUNS_QUERY = """
SELECT f.name, r.status, count(r.id) FROM runs_run r
JOIN scheduling_function f ON f.id = r.function_id
GROUP BY f.name, r.status ORDER BY f.name, r.status
"""


class BeforeRunsCollector:
    def collect(self):
        from django.db import connection
        from prometheus_client.core import GaugeMetricFamily

        runs = GaugeMetricFamily(
            "chalk_runs", "Runs the database holds, by function and status.",
            labels=["function", "status"],
        )  # fmt: skip
        with connection.cursor() as cursor:
            cursor.execute(BEFORE_RUNS_QUERY)
            for function, status, n in cursor.fetchall():
                runs.add_metric([function, status], n)
        yield runs


def scrape_before(client) -> bytes:
    from prometheus_client import CollectorRegistry, generate_latest

    registry = CollectorRegistry(auto_describe=False)
    registry.register(BeforeRunsCollector())
    return generate_latest(registry) + scrape_after(client)


def scrape_after(client) -> bytes:
    response = client.get("/metrics")
    assert response.status_code == 200, response.content[:500]
    return response.content


def measure(scrape, client, repeat: int) -> tuple[float, int]:
    """(median ms, bytes of the body)."""
    body = scrape(client)  # warm PostgreSQL's buffers and the code paths
    timings = []
    for _ in range(repeat):
        started = time.perf_counter()
        scrape(client)
        timings.append((time.perf_counter() - started) * 1000)
    return statistics.median(timings), len(body)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--functions", type=int, default=FUNCTIONS)
    parser.add_argument("--runs", type=int, default=RUNS)
    parser.add_argument("--repeat", type=int, default=10, help="timed scrapes of each kind")
    parser.add_argument("--rebuild", action="store_true", help="rebuild the data")
    args = parser.parse_args()
    setup_django(Path(tempfile.mkdtemp(prefix="chalk-bench-metrics-")))
    ensure_data(args.rebuild, args.functions, args.runs)

    from django.test import Client, override_settings

    client = Client(HTTP_HOST="localhost")  # a host ALLOWED_HOSTS lists; "testserver" is not
    with override_settings(CHALK_METRICS_TOKEN=""):
        before_ms, before_bytes = measure(scrape_before, client, args.repeat)
        after_ms, after_bytes = measure(scrape_after, client, args.repeat)

    ms_ratio, bytes_ratio = after_ms / before_ms, after_bytes / before_bytes
    print(f"\none scrape of /metrics, {args.functions:,} functions, {args.runs:,} runs, "
          f"median of {args.repeat}:")  # fmt: skip
    print(f"  before (every run counted)  {before_ms:9.1f} ms {before_bytes:>12,} bytes")
    print(
        f"  after (counters)            {after_ms:9.1f} ms {after_bytes:>12,} bytes   "
        f"(after / before: {ms_ratio:.4f}x the time, {bytes_ratio:.4f}x the bytes)"
    )
    print(
        f"RESULT functions={args.functions} runs={args.runs} before_ms={before_ms:.1f} "
        f"before_bytes={before_bytes} after_ms={after_ms:.1f} after_bytes={after_bytes} "
        f"ms_ratio={ms_ratio:.4f} bytes_ratio={bytes_ratio:.4f}"
    )


if __name__ == "__main__":
    main()
