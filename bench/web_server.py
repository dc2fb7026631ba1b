"""How does the production web server (gunicorn, chalkweb/gunicorn_conf.py) compare with
Django's runserver, which served everything before?

Starts each in turn on loopback against one PostgreSQL database of its own
(BENCH_WEB_DATABASE_URL, default chalkweb_bench_web) holding 50 functions, and loads it from
this process for --seconds per address with --concurrency client threads, each request on a
new connection: the health check, the API's function list (a bearer token), the console's
functions page (a signed-in session) and a static file. Prints each server's p50 / p99
latency and requests per second, and gunicorn's figures as ratios of runserver's (latency
below 1 and throughput above 1 favour gunicorn).

    .venv/bin/python bench/web_server.py [--seconds 10] [--concurrency 8] [--workers N]

The last line is `RESULT <path>=p50 ratio/throughput ratio ...`. `--seconds 1 --concurrency 2
--workers 1` is the small mode `make test` runs (tests/test_benchmarks.py).
"""

from __future__ import annotations

import argparse
import http.client
import os
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

os.environ.setdefault(
    "BENCH_DATABASE_URL",
    os.environ.get(
        "BENCH_WEB_DATABASE_URL", "postgres://postgres@127.0.0.1:5432/chalkweb_bench_web"
    ),
)
sys.path.insert(0, str(Path(__file__).resolve().parent))
from _platform import REPO, percentile, setup_django  # noqa: E402

FUNCTIONS = 50
PATHS = ["/healthz", "/api/v1/functions", "/", "/static/chalkweb.css"]


def prepare() -> tuple[str, str]:
    """Functions to list, a person and her token and session; returns (token, session key)."""
    from django.contrib.auth import get_user_model
    from django.contrib.sessions.backends.db import SessionStore
    from django.utils import timezone

    from access.tokens import token_create
    from chalkcompute.spec import FunctionSpec
    from scheduling.models import Function
    from scheduling.services import function_deploy
    from tests.personas import PLATFORM, acting

    now = timezone.now()
    for number in range(Function.objects.count(), FUNCTIONS):
        function_deploy(
            name=f"web-bench-{number}", source="def job():\n    pass\n",
            source_filename="job.py", entrypoint="job", spec=FunctionSpec(schedule="1h"),
            actor=acting("bench"), now=now,
        )  # fmt: skip
    user = get_user_model().objects.get(username="bench")
    _, token = token_create(name=f"web-bench-{time.time_ns()}", user=user, actor=PLATFORM, now=now)
    session = SessionStore()
    session["_auth_user_id"] = str(user.pk)
    session["_auth_user_backend"] = "django.contrib.auth.backends.ModelBackend"
    session["_auth_user_hash"] = user.get_session_auth_hash()
    session.create()
    return token, session.session_key


def start(kind: str, port: int, workers: int) -> subprocess.Popen:
    python = sys.executable
    commands = {
        "runserver": [python, "manage.py", "runserver", f"127.0.0.1:{port}", "--noreload",
                      "--skip-checks"],
        "gunicorn": [python, "-m", "gunicorn", "--config", "python:chalkweb.gunicorn_conf",
                     "--bind", f"127.0.0.1:{port}", "chalkweb.wsgi"],
    }  # fmt: skip
    env = {**os.environ, "CHALK_WEB_WORKERS": str(workers), "CHALK_LOG_LEVEL": "WARNING"}
    process = subprocess.Popen(
        commands[kind], cwd=REPO, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
    )
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        try:
            connection = http.client.HTTPConnection("127.0.0.1", port, timeout=5)
            connection.request("GET", "/healthz")
            if connection.getresponse().status == 200:
                return process
        except OSError:
            time.sleep(0.2)
    process.kill()
    raise SystemExit(f"{kind} did not start on port {port}")


def load(port: int, path: str, headers: dict, seconds: float, concurrency: int) -> dict:
    latencies: list[float] = []
    failures = 0
    deadline = time.monotonic() + seconds

    def client():
        nonlocal failures
        while time.monotonic() < deadline:
            began = time.perf_counter()
            try:
                connection = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
                connection.request("GET", path, headers=headers)
                response = connection.getresponse()
                response.read()
                connection.close()
                ok = response.status == 200
            except OSError:
                ok = False
            if ok:
                latencies.append(time.perf_counter() - began)
            else:
                failures += 1

    threads = [threading.Thread(target=client) for _ in range(concurrency)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return {
        "p50": percentile(latencies, 0.5) * 1000,
        "p99": percentile(latencies, 0.99) * 1000,
        "rate": len(latencies) / seconds,
        "failures": failures,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seconds", type=float, default=10)
    parser.add_argument("--concurrency", type=int, default=8)
    parser.add_argument("--workers", type=int, default=2 * (os.cpu_count() or 1) + 1)
    options = parser.parse_args()
    setup_django(Path(tempfile.mkdtemp(prefix="chalkweb-bench-web-")))
    token, session = prepare()
    headers = {
        "/api/v1/functions": {"Authorization": f"Bearer {token}"},
        "/": {"Cookie": f"sessionid={session}"},
    }
    results: dict[str, dict[str, dict]] = {}
    for kind in ("runserver", "gunicorn"):
        from tests.test_make_run import free_port

        port = free_port()
        process = start(kind, port, options.workers)
        try:
            for path in PATHS:
                load(port, path, headers.get(path, {}), 1, options.concurrency)  # warm up
                results.setdefault(path, {})[kind] = load(
                    port, path, headers.get(path, {}), options.seconds, options.concurrency
                )
        finally:
            process.terminate()
            process.wait(timeout=60)

    print(
        f"{options.concurrency} clients, {options.seconds:g} s per address, gunicorn "
        f"{options.workers} workers x {os.environ.get('CHALK_WEB_THREADS', '4')} threads"
    )
    print(f"{'address':22} {'runserver p50/p99, req/s':>28} {'gunicorn p50/p99, req/s':>28}"
          f" {'p50 ratio':>10} {'req/s ratio':>12}")  # fmt: skip
    summary = []
    for path in PATHS:
        old, new = results[path]["runserver"], results[path]["gunicorn"]
        cells = [f"{r['p50']:.1f}/{r['p99']:.1f} ms, {r['rate']:.0f}/s" for r in (old, new)]
        p50_ratio, rate_ratio = new["p50"] / old["p50"], new["rate"] / old["rate"]
        failed = "" if not (old["failures"] or new["failures"]) else (
            f"  failures {old['failures']}/{new['failures']}"
        )  # fmt: skip
        print(f"{path:22} {cells[0]:>28} {cells[1]:>28} {p50_ratio:>9.2f}x {rate_ratio:>11.2f}x"
              + failed)  # fmt: skip
        summary.append(f"{path}={p50_ratio:.2f}/{rate_ratio:.2f}")
    print("RESULT " + " ".join(summary))


if __name__ == "__main__":
    main()
