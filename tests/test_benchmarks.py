"""The benchmarks' small modes, so that none can rot: each runs as `make bench` would run it,
on a few functions or a second of measuring, and prints its RESULT line."""

import os
import subprocess
import sys
from pathlib import Path

import pytest
from django.db import connection

REPO = Path(__file__).resolve().parents[1]


def bench(script: str, *args: str, env: dict[str, str] | None = None) -> str:
    result = subprocess.run(
        [sys.executable, str(REPO / "bench" / script), *args],
        env={**os.environ, **(env or {})},
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    return result.stdout


def test_the_schedule_engine_benchmark_runs():
    out = bench("schedule_engine.py", "--seconds", "1")

    assert "ours / cronsim" in out


@pytest.mark.django_db
def test_the_zoned_tick_benchmark_runs():
    if connection.vendor != "postgresql":
        pytest.skip("the platform benchmarks run on PostgreSQL (set DATABASE_URL)")
    url = os.environ["DATABASE_URL"]
    out = bench(
        "zoned_tick.py", "--functions", "200", "--repeat", "1",
        env={"BENCH_DATABASE_URL": f"{url}_bench"},
    )  # fmt: skip

    assert "RESULT functions=200 " in out


@pytest.mark.django_db
def test_the_console_benchmark_runs():
    if connection.vendor != "postgresql":
        pytest.skip("the platform benchmarks run on PostgreSQL (set DATABASE_URL)")
    url = os.environ["DATABASE_URL"]
    out = bench(
        "console.py", "--functions", "100", "--runs", "10000", "--repeat", "1",
        env={"BENCH_CONSOLE_DATABASE_URL": f"{url}_bench_console"},
    )  # fmt: skip

    assert "RESULT functions_page=" in out


@pytest.mark.django_db
def test_the_metrics_benchmark_runs():
    if connection.vendor != "postgresql":
        pytest.skip("the platform benchmarks run on PostgreSQL (set DATABASE_URL)")
    url = os.environ["DATABASE_URL"]
    out = bench(
        "metrics.py", "--functions", "100", "--runs", "10000", "--repeat", "2",
        env={"BENCH_CONSOLE_DATABASE_URL": f"{url}_bench_console"},
    )  # fmt: skip

    assert "RESULT functions=100 runs=10000 " in out
    assert "after / before" in out
