"""From slot to the first line of user code, on the local executor with a warm image.

The whole platform runs as on a production machine (gunicorn, control and runs workers, beat) on a
database and broker of the benchmark's own. A function whose first line logs is given a slot
a few seconds ahead, again and again; the lag is the log record's time minus the slot (the
platform starts the runner a second ahead and calls the function on the slot). Beside it:
"run now", which has no slot to prepare for (trigger to first line: the whole cold path), and
the floor of starting `python -c pass` on this machine.

    .venv/bin/python bench/run_overhead.py [--samples 20]

`--samples 2` is the small mode `make test` runs (tests/test_benchmarks.py).
"""

from __future__ import annotations

import argparse
import datetime as dt
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _platform import percentile, purge_broker, setup_django, start_platform, wait_for  # noqa: E402

FUNCTION_SOURCE = """from chalk import chalk_logger


def overhead():
    chalk_logger.info("first line")
"""


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--samples", type=int, default=20)
    args = parser.parse_args()
    data_dir = Path(tempfile.mkdtemp(prefix="chalkweb-bench-"))
    setup_django(data_dir)
    purge_broker()

    from django.utils import timezone

    from access.actor import Actor
    from chalkcompute.spec import FunctionSpec
    from runs.beat import ensure_periodic_tasks
    from runs.models import LogLine, Run
    from runs.services import run_trigger
    from scheduling.models import Function
    from scheduling.services import function_deploy

    def first_line(run: Run) -> LogLine | None:
        """The function's own first line: a system line (an unsandboxed run's warning) is the
        platform's, written before the function starts."""
        return (
            LogLine.objects.filter(attempt__run=run).exclude(stream="system").order_by("id").first()
        )

    Function.objects.all().delete()
    ensure_periodic_tasks()
    function = function_deploy(
        name="overhead", source=FUNCTION_SOURCE,
        source_filename="overhead.py", entrypoint="overhead",
        spec=FunctionSpec(schedule="0 0 1 1 *", overlap="allow"), actor=Actor.platform(),
        now=timezone.now(),
    ).function  # fmt: skip
    processes = start_platform(data_dir)
    try:
        warm = run_trigger(
            function=function, trigger="manual", actor=Actor.platform(), now=timezone.now()
        )
        wait_for(
            lambda: Run.objects.get(id=warm.id).status == "succeeded",
            120,
            "the warm-up run (image build)",
        )
        lags = []
        for _ in range(args.samples):
            slot = (timezone.now() + dt.timedelta(seconds=3)).replace(microsecond=0)
            Function.objects.filter(id=function.id).update(next_fire_at=slot)
            run = wait_for(
                lambda s=slot: Run.objects.filter(function=function, scheduled_for=s).first(),
                30,
                "the run",
            )
            first = wait_for(lambda r=run: first_line(r), 30, "the first line")
            lags.append((first.ts - slot).total_seconds() * 1000)
            wait_for(
                lambda r=run: Run.objects.get(id=r.id).status == "succeeded", 30, "the run to end"
            )
        # Run now has no slot to prepare for: this is the whole cold path, for comparison.
        manual = []
        for _ in range(args.samples):
            run = run_trigger(
                function=function, trigger="manual", actor=Actor.platform(), now=timezone.now()
            )
            first = wait_for(lambda r=run: first_line(r), 30, "the first line")
            manual.append((first.ts - run.created_at).total_seconds() * 1000)
            wait_for(
                lambda r=run: Run.objects.get(id=r.id).status == "succeeded", 30, "the run to end"
            )
    finally:
        for process in processes:
            process.terminate()
        for process in processes:
            process.wait(timeout=30)
        purge_broker()

    venv_python = next((data_dir / "images").glob("*/bin/python"))
    floor = []
    for _ in range(args.samples):
        started = time.perf_counter()
        subprocess.run([str(venv_python), "-c", "pass"], check=True)
        floor.append((time.perf_counter() - started) * 1000)

    p50, p99, floor_p50 = percentile(lags, 0.5), percentile(lags, 0.99), percentile(floor, 0.5)
    print(f"{'':34}{'p50 ms':>10}{'p99 ms':>10}")
    print(f"{'slot -> first line of user code':34}{p50:>10.0f}{p99:>10.0f}")
    print(
        f"{'run now -> first line (cold path)':34}"
        f"{percentile(manual, 0.5):>10.0f}{percentile(manual, 0.99):>10.0f}"
    )
    print(f"{'floor: python -c pass':34}{floor_p50:>10.0f}{percentile(floor, 0.99):>10.0f}")
    print(
        f"run now / floor at p50: {percentile(manual, 0.5) / floor_p50:.1f}x; "
        f"slot / floor at p50: {p50 / floor_p50:.2f}x"
    )
    print(
        f"RESULT p50_ms={p50:.0f} p99_ms={p99:.0f} floor_p50_ms={floor_p50:.0f} "
        f"run_now_p50_ms={percentile(manual, 0.5):.0f}"
    )


if __name__ == "__main__":
    main()
