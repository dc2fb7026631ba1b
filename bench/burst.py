"""The top of the hour: N functions on one slot, on the local executor with real workers.

The platform runs as in production on one machine (gunicorn, a control worker, the runs
worker on its threads pool, beat) on a database and broker of the benchmark's own, sandboxed
as on this machine. N functions, each printing a line as it starts, get the same slot; the lag
is each first line's time minus the slot. Beside it, in the same run, the baseline: cron's way,
N interpreters of the same image started at the slot, each printing its line. Also: how long
preparing the N took (from the first run's claim to the last one waiting for its slot, ready),
and the platform's peak memory (every process of it, runners and functions included) while
the N wait, total and per prepared run.

    .venv/bin/python bench/burst.py --functions 60 [--functions 200]

Ends with one line per N: RESULT functions=N p50_ms=… p99_ms=… max_ms=… baseline_p99_ms=…
peak_rss_mb=…. `--functions 2` is the small mode `make test` runs (tests/test_benchmarks.py).
"""

from __future__ import annotations

import argparse
import datetime as dt
import os
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _platform import percentile, purge_broker, setup_django, start_platform, wait_for  # noqa: E402

FUNCTION_SOURCE = """import random
import time


def burst():
    print("first line")
    time.sleep(random.uniform(0, 1.5))
"""
NAMES = ("web", "control", "runs worker and its runs", "beat")  # start_platform's order
BASELINE_SCRIPT = "import time\nprint(time.time(), flush=True)\n"


class MemoryPeak:
    """Samples the summed RSS of a set of process trees every 0.2 s."""

    def __init__(self, roots: list[int]) -> None:
        self.roots = roots
        self.peak = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        while not self._stop.wait(0.2):
            self.peak = max(self.peak, tree_rss(self.roots))

    def __enter__(self) -> MemoryPeak:
        self._thread.start()
        return self

    def __exit__(self, *_) -> None:
        self._stop.set()
        self._thread.join()


def _processes() -> dict[int, tuple[int, int, float]]:
    """Every process: pid -> (parent pid, RSS bytes, CPU seconds with its waited-for children)."""
    page, ticks = os.sysconf("SC_PAGE_SIZE"), os.sysconf("SC_CLK_TCK")
    found = {}
    for entry in os.scandir("/proc"):
        if not entry.name.isdigit():
            continue
        try:
            with open(f"/proc/{entry.name}/stat") as stat:
                fields = stat.read().rsplit(")", 1)[1].split()
        except OSError:
            continue
        cpu = sum(int(f) for f in fields[11:15]) / ticks  # utime stime cutime cstime
        found[int(entry.name)] = (int(fields[1]), int(fields[21]) * page, cpu)
    return found


def _tree(roots: list[int], processes) -> list[int]:
    children: dict[int, list[int]] = {}
    for pid, (parent, _, _) in processes.items():
        children.setdefault(parent, []).append(pid)
    tree, stack = [], list(roots)
    while stack:
        pid = stack.pop()
        tree.append(pid)
        stack.extend(children.get(pid, []))
    return tree


def tree_rss(roots: list[int]) -> int:
    """Summed RSS in bytes of `roots` and all their descendants."""
    processes = _processes()
    return sum(processes[pid][1] for pid in _tree(roots, processes) if pid in processes)


def cpu_seconds(root: int) -> float:
    """CPU time of `root` and its descendants: those alive, and those that ended and were
    waited for (counted in their parents' cutime)."""
    processes = _processes()
    return sum(processes[pid][2] for pid in _tree([root], processes) if pid in processes)


def baseline(python: Path, count: int, folder: Path) -> list[float]:
    """Cron's way: `count` interpreters started at a slot; ms from the slot to each line."""
    script = folder / "baseline.py"
    script.write_text(BASELINE_SCRIPT)
    slot = time.time() + 1.0
    time.sleep(slot - time.time())
    processes = [
        subprocess.Popen([str(python), str(script)], stdout=subprocess.PIPE, text=True)
        for _ in range(count)
    ]
    return [(float(p.communicate()[0]) - slot) * 1000 for p in processes]


def burst(count: int, functions) -> dict:
    from django.utils import timezone

    from runs.models import Attempt, LogLine, Run
    from runs.services import prepare_lead
    from scheduling.models import Function

    lead = prepare_lead(count).total_seconds()
    slot = (timezone.now() + dt.timedelta(seconds=lead + 8)).replace(microsecond=0)
    Function.objects.filter(id__in=[f.id for f in functions]).update(next_fire_at=slot)
    wait_for(
        lambda: Run.objects.filter(scheduled_for=slot).count() == count,
        lead + 30,
        "the tick to create the runs",
    )
    first_claim = ready_at = None
    ready = 0
    while timezone.now() < slot:
        taken = Attempt.objects.filter(run__scheduled_for=slot).exclude(status="queued")
        if first_claim is None and taken.exists():
            first_claim = timezone.now()
        ready = taken.filter(status="running").count()  # the runner fetched its attempt
        if ready_at is None and ready == count:
            ready_at = timezone.now()
        time.sleep(0.1)
    runs = list(Run.objects.filter(scheduled_for=slot))

    def first_lines():
        lines = dict(
            LogLine.objects.filter(attempt__run__in=runs, stream="stdout", text="first line")
            .values_list("attempt__run_id", "ts")
        )  # fmt: skip
        return lines if len(lines) == count else None

    lines = wait_for(first_lines, 120, "every first line")
    wait_for(
        lambda: not Run.objects.filter(id__in=[r.id for r in runs]).active().exists(),
        120,
        "the runs to end",
    )  # fmt: skip
    failed = Run.objects.filter(id__in=[r.id for r in runs]).exclude(status="succeeded").count()
    lags = [(ts - slot).total_seconds() * 1000 for ts in lines.values()]
    return {
        "lags": lags,
        "failed": failed,
        "lead": lead,
        "prepare_seconds": (ready_at - first_claim).total_seconds()
        if first_claim and ready_at
        else None,
        "ready_before_slot": (slot - ready_at).total_seconds() if ready_at else None,
        "ready_at_slot": ready,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--functions", type=int, action="append")
    args = parser.parse_args()
    counts = args.functions or [60]
    data_dir = Path(tempfile.mkdtemp(prefix="chalkweb-bench-"))
    setup_django(data_dir)
    purge_broker()

    from django.utils import timezone

    from access.actor import Actor
    from chalkcompute.spec import FunctionSpec
    from runs.beat import ensure_periodic_tasks
    from runs.models import Run
    from runs.services import run_trigger
    from scheduling.models import Function
    from scheduling.services import function_deploy

    Function.objects.all().delete()
    ensure_periodic_tasks()
    functions = [
        function_deploy(
            name=f"burst-{n}",
            source=FUNCTION_SOURCE,
            source_filename="burst.py",
            entrypoint="burst",
            spec=FunctionSpec(schedule="0 0 1 1 *", overlap="allow"),
            actor=Actor.platform(),
            now=timezone.now(),
        ).function  # fmt: skip
        for n in range(max(counts))
    ]
    processes = start_platform(data_dir)
    results = []
    try:
        warm = run_trigger(
            function=functions[0], trigger="manual", actor=Actor.platform(), now=timezone.now()
        )
        wait_for(lambda: Run.objects.get(id=warm.id).status == "succeeded", 180, "the image build")
        python = next((data_dir / "images").glob("*/bin/python"))
        for count in counts:
            idle = tree_rss([p.pid for p in processes])
            cpu_before = {
                name: cpu_seconds(p.pid) for name, p in zip(NAMES, processes, strict=True)
            }
            with MemoryPeak([p.pid for p in processes]) as memory:
                measured = burst(count, functions[:count])
            measured["cpu"] = {
                name: cpu_seconds(p.pid) - cpu_before[name]
                for name, p in zip(NAMES, processes, strict=True)
            }
            cron = baseline(python, count, data_dir)
            results.append((count, measured, cron, idle, memory.peak))
    finally:
        for process in processes:
            process.terminate()
        for process in processes:
            try:
                process.wait(timeout=120)  # warm shutdown: the runs in flight end first
            except subprocess.TimeoutExpired:
                process.kill()
        purge_broker()

    print(f"{'':44}{'p50 ms':>9}{'p99 ms':>9}{'max ms':>9}")
    for count, measured, cron, idle, peak in results:
        lags = measured["lags"]
        p50, p99, top = percentile(lags, 0.5), percentile(lags, 0.99), max(lags)
        print(f"{f'N={count}: slot -> first line (Chalkweb)':44}{p50:>9.0f}{p99:>9.0f}{top:>9.0f}")
        print(
            f"{f'N={count}: slot -> first line (cron baseline)':44}"
            f"{percentile(cron, 0.5):>9.0f}{percentile(cron, 0.99):>9.0f}{max(cron):>9.0f}"
        )
        print(
            f"  p99 ratio Chalkweb / cron: {p99 / percentile(cron, 0.99):.2f}; "
            f"failed runs: {measured['failed']}; lead {measured['lead']:.1f} s"
        )
        if measured["prepare_seconds"] is not None:
            print(
                f"  prepared in {measured['prepare_seconds']:.1f} s "
                f"({measured['prepare_seconds'] / count:.3f} s per run), all ready "
                f"{measured['ready_before_slot']:.1f} s before the slot"
            )
        else:
            print(f"  {measured['ready_at_slot']} of {count} runs were ready at the slot")
        print(
            "  CPU seconds per run: "
            + ", ".join(
                f"{name} {seconds / count:.3f}" for name, seconds in measured["cpu"].items()
            )
        )
        print(
            f"  platform memory: {idle / 2**20:.0f} MiB idle, {peak / 2**20:.0f} MiB at peak, "
            f"{(peak - idle) / count / 2**20:.1f} MiB per prepared run"
        )
    for count, measured, cron, _, peak in results:
        lags = measured["lags"]
        print(
            f"RESULT functions={count} p50_ms={percentile(lags, 0.5):.0f} "
            f"p99_ms={percentile(lags, 0.99):.0f} max_ms={max(lags):.0f} "
            f"baseline_p99_ms={percentile(cron, 0.99):.0f} peak_rss_mb={peak / 2**20:.0f}"
        )


if __name__ == "__main__":
    main()
