"""How fast are the console's pages with 10,000 functions and 1,000,000 runs?

Fills a database of its own with bench/_history.py's data: 10,000 functions (one in ten
paused; one "hot" function with 100,000 runs and 20 versions), 1,000,000 runs with an attempt
each, 2 log lines and a usage sample per attempt, and one hour-long run with 20,000 log lines
and 3,600 samples. Then it renders each page in-process with Django's test Client, logged in
as a staff user, and reports the median and 95th percentile server time over --repeat
requests and the number of queries of one request. A page passes when its median is at most
150 ms and its query count is the same for the hot function or the big run as for an ordinary
one.

    .venv/bin/python bench/console.py [--functions 10000] [--runs 1000000] [--repeat 20]
        [--rebuild]

The data is kept between runs (rebuilt when the counts differ or with --rebuild). Each page's
median is also printed as a ratio of the target. The last line is
`RESULT functions_page=ms/queries function_page=… runs_page=… run_page=…`, each the slowest
variant of that page. `--functions 100 --runs 10000 --repeat 1` is the small mode `make test`
runs (tests/test_benchmarks.py).
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _history import BIG_RUN_LINES, FUNCTIONS, RUNS, ensure_data, setup_django  # noqa: E402
from _platform import percentile  # noqa: E402

TARGET_MS = 150.0


def pages(functions: int) -> list[tuple[str, str, str, dict]]:
    """(page, variant, url, headers): an ordinary case and the heavy ones for each page."""
    from runs.models import Attempt, LogLine, Run

    ordinary = f"fn-{functions * 4242 // 10_000:05d}"  # fn-04242 of 10,000
    halfway = f"fn-{functions // 2:05d}"
    big_attempt = Attempt.objects.get(log_lines=BIG_RUN_LINES + 2).id
    big_run = Attempt.objects.get(id=big_attempt).run_id
    big_last_line = LogLine.objects.filter(attempt_id=big_attempt).order_by("-id")[0].id
    ordinary_run = Run.objects.filter(function__name=ordinary, status="failed").order_by("-id")[0]
    middle = Run.objects.order_by("-id").values_list("id", flat=True)[0] // 2
    htmx = {"HTTP_HX_REQUEST": "true"}
    return [
        ("functions_page", "first page", "/", {}),
        ("functions_page", "page after halfway", f"/?after={halfway}", {}),
        ("functions_page", "previous page", f"/?before={halfway}", {}),
        ("functions_page", "name filter", "/?q=fn-09", {}),
        ("functions_page", "paused only", "/?state=paused", {}),
        ("function_page", "ordinary (90 runs)", f"/functions/{ordinary}", {}),
        ("function_page", "hot (100k runs, 20 versions)", "/functions/fn-00000", {}),
        ("function_page", "hot, diff v1..v20", "/functions/fn-00000?from=1&to=20", {}),
        ("function_page", "hot, older runs", f"/functions/fn-00000?after={middle}", {}),
        ("runs_page", "first page", "/runs", {}),
        ("runs_page", "middle of the runs", f"/runs?after={middle}", {}),
        ("runs_page", "status=failed", "/runs?status=failed", {}),
        ("runs_page", "function=hot", "/runs?function=fn-00000", {}),
        ("runs_page", "function+status", f"/runs?function={ordinary}&status=failed", {}),
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
    parser.add_argument("--functions", type=int, default=FUNCTIONS)
    parser.add_argument("--runs", type=int, default=RUNS)
    args = parser.parse_args()
    data_dir = Path(tempfile.mkdtemp(prefix="chalk-bench-console-"))
    setup_django(data_dir)
    ensure_data(args.rebuild, args.functions, args.runs)

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

    print(
        f"\n{'page':<16}{'variant':<32}{'median ms':>10}{'p95 ms':>9}{'queries':>9}{'/ target':>10}"
    )
    worst: dict[str, tuple[float, int]] = {}
    for page, variant, url, headers in pages(args.functions):
        median, p95, queries = measure(client, url, headers, args.repeat)
        flag = "" if median <= TARGET_MS else "  over target"
        print(
            f"{page:<16}{variant:<32}{median:>10.1f}{p95:>9.1f}{queries:>9}"
            f"{median / TARGET_MS:>9.2f}x{flag}",
            flush=True,
        )
        slowest, most = worst.get(page, (0.0, 0))
        worst[page] = (max(slowest, median), max(most, queries))
    print(
        "\nRESULT "
        + " ".join(f"{page}={ms:.0f}/{queries}" for page, (ms, queries) in worst.items())
    )


if __name__ == "__main__":
    main()
