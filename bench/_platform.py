"""Shared set-up for the platform benchmarks: a PostgreSQL database of their own, migrated,
and a Redis broker database, so a benchmark never touches `make run`'s or the tests' data."""

from __future__ import annotations

import os
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
BENCH_DATABASE_URL = os.environ.get(
    "BENCH_DATABASE_URL", "postgres://postgres@127.0.0.1:5432/chalkweb_bench"
)
BENCH_BROKER_URL = os.environ.get("BENCH_BROKER_URL", "redis://127.0.0.1:6379/14")


def setup_django(data_dir: Path) -> None:
    """Points Django at the benchmark's database and broker, creating and migrating them."""
    import psycopg

    name = BENCH_DATABASE_URL.rsplit("/", 1)[1]
    with psycopg.connect(
        BENCH_DATABASE_URL.rsplit("/", 1)[0] + "/postgres", autocommit=True
    ) as conn:
        if not conn.execute("SELECT 1 FROM pg_database WHERE datname = %s", (name,)).fetchone():
            conn.execute(f'CREATE DATABASE "{name}"')
    os.environ.update(
        DATABASE_URL=BENCH_DATABASE_URL,
        CELERY_BROKER_URL=BENCH_BROKER_URL,
        CHALK_DATA_DIR=str(data_dir),
        DJANGO_SETTINGS_MODULE="chalkweb.settings",
    )
    # With DATABASE_URL set the settings want both keys; the processes a benchmark starts
    # inherit these.
    import secrets

    from cryptography.fernet import Fernet

    os.environ.setdefault("DJANGO_SECRET_KEY", secrets.token_urlsafe(50))
    os.environ.setdefault("CHALK_SECRETS_KEY", Fernet.generate_key().decode())
    sys.path.insert(0, str(REPO))
    import django

    django.setup()
    from django.core.management import call_command

    call_command("migrate", interactive=False, verbosity=0)


def wait_for(predicate, timeout: float, what: str):
    """predicate()'s first value that is not None or False, polled every 50 ms."""
    import time

    deadline = time.monotonic() + timeout
    while (value := predicate()) is None or value is False:
        if time.monotonic() > deadline:
            raise SystemExit(f"timed out waiting for {what}")
        time.sleep(0.05)
    return value


def in_thread(target, *args):
    """Runs target(*args) in a daemon thread that closes its database connection at the end."""
    import threading

    from django.db import connection

    def body():
        try:
            target(*args)
        finally:
            connection.close()

    thread = threading.Thread(target=body, daemon=True)
    thread.start()
    return thread


def free_port() -> int:
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def start_platform(data_dir: Path, extra_env: dict[str, str] | None = None) -> list:
    """The platform as on a production machine (after setup_django): gunicorn, a control
    worker, the runs worker with its threads pool, beat; logs in `data_dir`."""
    import subprocess

    from chalkweb.management.commands.run_platform import web_command
    from runs.worker import runs_worker_pool

    port = free_port()
    env = {
        **os.environ,
        "CHALK_DATA_DIR": str(data_dir),
        "CHALK_PUBLIC_URL": f"http://127.0.0.1:{port}",
        "PORT": str(port),
        **(extra_env or {}),
    }
    celery = [sys.executable, "-m", "celery", "-A", "chalkweb"]
    commands = {
        "web": web_command(sys.executable, "127.0.0.1", port),
        "control": [*celery, "worker", "-Q", "chalk-control", "-c", "2", "-n", "control@%h"],
        "runs": [*celery, "worker", "-Q", "chalk-runs", *runs_worker_pool(), "-n", "runs@%h"],
        "beat": [*celery, "beat", "--pidfile", str(data_dir / "beat.pid")],
    }
    return [
        subprocess.Popen(
            cmd,
            cwd=REPO,
            env=env,
            stdout=open(data_dir / f"{name}.log", "w"),
            stderr=subprocess.STDOUT,
        )  # fmt: skip
        for name, cmd in commands.items()
    ]


def purge_broker() -> None:
    """Empties Chalkweb's queues, so no message of an earlier run reaches this one's workers."""
    from chalkweb.celery import purge_queues

    purge_queues()


def percentile(values: list[float], fraction: float) -> float:
    if not values:
        return float("nan")
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(fraction * len(ordered)))]


def every_minute_functions(count: int, first_slot):
    """`count` functions bench-0… on `* * * * *`, each with a deployed version, due at
    `first_slot` (None: not due until given a slot): made in bulk, as no deploy would (a
    deploy per function costs seconds)."""
    import datetime as dt

    from chalkcompute.image import Image as ImageSpec
    from scheduling.models import Function, FunctionVersion, Image

    now = dt.datetime.now(dt.UTC)
    spec = ImageSpec.debian_slim()
    image, _ = Image.objects.get_or_create(
        spec_hash=spec.spec_hash, defaults={"spec": spec.spec, "created_at": now}
    )
    functions = Function.objects.bulk_create(
        Function(name=f"bench-{i}", next_fire_at=first_slot, created_at=now, updated_at=now)
        for i in range(count)
    )
    versions = FunctionVersion.objects.bulk_create(
        FunctionVersion(
            function=f,
            number=1,
            source="def f():\n    pass\n",
            source_filename="bench.py",
            source_sha256="0" * 64,
            entrypoint="f",
            image=image,
            schedule="* * * * *",
            cron="* * * * *",
            retries={"max_retries": 0},
            content_hash="0" * 64,
            created_at=now,
        )  # fmt: skip
        for f in functions
    )
    for function, version in zip(functions, versions, strict=True):
        function.current_version = version
    Function.objects.bulk_update(functions, ["current_version"], batch_size=5000)
    return functions
