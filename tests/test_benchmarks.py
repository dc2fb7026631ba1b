"""The benchmarks' small modes, so that none can rot: each runs as `make bench` would run it,
on a few functions or a second of measuring, and prints its RESULT line. The platform
benchmarks run on PostgreSQL, each in a database named after the tests' own, on the tests'
broker; those that start the platform's processes or wait on the clock are marked slow."""

import os
import shutil
import subprocess
import sys
from pathlib import Path

import psycopg
import pytest
from django.db import connection

REPO = Path(__file__).resolve().parents[1]
HAS_SANDBOX = shutil.which("bwrap") is not None
HAS_NETWORK = HAS_SANDBOX and shutil.which("slirp4netns") is not None
needs_sandbox = pytest.mark.skipif(
    not HAS_SANDBOX and not os.environ.get("CI"), reason="bubblewrap is not installed here"
)


def bench(script: str, *args: str, env: dict[str, str] | None = None) -> str:
    result = subprocess.run(
        [sys.executable, str(REPO / "bench" / script), *args],
        env={**os.environ, **(env or {})},
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert result.returncode == 0, result.stdout[-6000:] + result.stderr[-6000:]
    return result.stdout


# The benchmark databases dropped so far in this session: each starts from nothing once, so
# one left by an earlier checkout (other migrations applied) cannot fail its migrate.
_DROPPED: set[str] = set()


def on_postgresql(name: str) -> dict[str, str]:
    """The environment of a platform benchmark: a database of its own beside the tests' (the
    benchmark creates it; dropped first, once a session), and the tests' broker."""
    if connection.vendor != "postgresql":
        pytest.skip("the platform benchmarks run on PostgreSQL (set DATABASE_URL)")
    url = f"{os.environ['DATABASE_URL']}_{name}"
    if url not in _DROPPED:
        server, database = url.rsplit("/", 1)
        with psycopg.connect(f"{server}/postgres", autocommit=True) as admin:
            admin.execute(f'DROP DATABASE IF EXISTS "{database}" WITH (FORCE)')
        _DROPPED.add(url)
    env = {"BENCH_DATABASE_URL": url, "BENCH_CONSOLE_DATABASE_URL": url}
    if os.environ.get("CELERY_TEST_BROKER_URL"):
        env["BENCH_BROKER_URL"] = os.environ["CELERY_TEST_BROKER_URL"]
    return env


def test_the_schedule_engine_benchmark_runs():
    out = bench("schedule_engine.py", "--seconds", "1")

    assert "ours / cronsim" in out


@pytest.mark.django_db
def test_the_zoned_tick_benchmark_runs():
    out = bench("zoned_tick.py", "--functions", "200", "--repeat", "1", env=on_postgresql("bench"))

    assert "RESULT functions=200 " in out


@pytest.mark.django_db
def test_the_console_benchmark_runs():
    out = bench(
        "console.py", "--functions", "100", "--runs", "10000", "--repeat", "1",
        env=on_postgresql("bench_console"),
    )  # fmt: skip

    assert "RESULT functions_page=" in out


@pytest.mark.django_db
def test_the_metrics_benchmark_runs():
    out = bench(
        "metrics.py", "--functions", "100", "--runs", "10000", "--repeat", "2",
        env=on_postgresql("bench_console"),  # the console benchmark's data
    )  # fmt: skip

    assert "RESULT functions=100 runs=10000 " in out
    assert "after / before" in out


def test_the_log_flood_benchmark_runs():
    out = bench("log_flood.py", "--functions", "10", "--lines", "5000", env={"DATABASE_URL": ""})

    assert "RESULT database=sqlite functions=10 lines=5000 " in out


@pytest.mark.skipif(
    not HAS_NETWORK and not os.environ.get("CI"),
    reason="bubblewrap and slirp4netns are not installed here",
)
def test_the_sandbox_network_benchmark_runs():
    out = bench("sandbox_network.py", "--samples", "2")

    assert "RESULT samples=2 " in out


@pytest.mark.slow
@pytest.mark.django_db
def test_the_web_server_benchmark_runs():
    env = on_postgresql("bench_web")
    out = bench(
        "web_server.py", "--seconds", "1", "--concurrency", "2", "--workers", "1",
        env={**env, "BENCH_WEB_DATABASE_URL": env["BENCH_DATABASE_URL"]},
    )  # fmt: skip

    assert "RESULT /healthz=" in out


@pytest.mark.slow
@pytest.mark.django_db
def test_the_kubernetes_outcomes_benchmark_runs():
    out = bench("kubernetes_outcomes.py", "--attempts", "3", env=on_postgresql("bench"))

    assert "RESULT attempts=3 " in out


@pytest.mark.slow
@pytest.mark.django_db
def test_the_kubernetes_ahead_benchmark_runs():
    out = bench(
        "kubernetes_ahead.py", "--functions", "1", "--pod-start-delay", "1",
        env={**on_postgresql("bench"), "CHALK_K8S_LOOKAHEAD_SECONDS": "5"},
    )  # fmt: skip

    assert "RESULT functions=1 pod_start_delay_s=1 lookahead_s=5 " in out


@pytest.mark.slow
@needs_sandbox
@pytest.mark.django_db
def test_the_run_overhead_benchmark_runs():
    out = bench("run_overhead.py", "--samples", "2", env=on_postgresql("bench"))

    assert "RESULT p50_ms=" in out


@pytest.mark.slow
@needs_sandbox
@pytest.mark.django_db
def test_the_burst_benchmark_runs():
    out = bench("burst.py", "--functions", "2", env=on_postgresql("bench"))

    assert "RESULT functions=2 " in out


@pytest.mark.slow
@pytest.mark.django_db
def test_the_scheduler_benchmark_runs():
    """A minute or two: each lookahead waits for its own slot, on a minute boundary."""
    out = bench(
        "scheduler.py", "--functions", "20", "--minutes", "1", "--no-beat", "--lead", "5",
        "--tail", "5", env=on_postgresql("bench"),
    )  # fmt: skip

    # The keys the README's figures are read from.
    result = out.strip().splitlines()[-1]
    assert result.startswith("RESULT functions=20 ")
    for key in ("fixed_p50_s", "fixed_p99_s", "fixed_missed", "growing_p50_s", "growing_p99_s",
                "growing_missed", "idle_tick_ms_fixed", "idle_tick_ms_growing"):  # fmt: skip
        assert f" {key}=" in result
