"""What a run's own network adds to the start of each attempt on the local executor.

Starts the attempt's real sandbox (sandbox.command: the venv, the runtime copy, a work folder)
running `python -c pass`, again and again, two ways side by side: sharing the worker's network
(CHALK_LOCAL_NETWORK=host, before) and with its own (network.spawn: slirp4netns attached, the
metadata route closed, the runner API's socket served; after). Needs bwrap and slirp4netns.

    .venv/bin/python bench/sandbox_network.py [--samples 40]

`--samples 2` is the small mode `make test` runs where bubblewrap and slirp4netns are
installed (tests/test_benchmarks.py).
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--samples", type=int, default=40)
    args = parser.parse_args()
    data = Path(tempfile.mkdtemp(prefix="chalk-bench-network-"))
    os.environ.update(DJANGO_SETTINGS_MODULE="chalkweb.settings", CHALK_DATA_DIR=str(data))
    os.environ.pop("DATABASE_URL", None)
    import django

    django.setup()
    from django.conf import settings

    from runs.executors.local import network, sandbox

    isolation = sandbox.isolation()
    if not isolation.slirp4netns:
        raise SystemExit(f"no sandbox with its own network here: {isolation.description}")
    python = Path(sys.base_prefix) / "bin" / "python3"
    venv = data / "images" / "bench"
    subprocess.run([python, "-m", "venv", "--without-pip", venv], check=True)
    runtime = sandbox.runtime_copy()
    ids = sandbox.run_ids()

    def start(own_network: bool) -> float:
        work = sandbox.work_folder("attempt-0", ids)
        argv = sandbox.command(
            isolation.bwrap, [str(venv / "bin" / "python"), "-c", "pass"], venv=venv,
            prefix=Path(sys.base_prefix).resolve(), runtime=runtime, work=work, ids=ids,
            own_network=own_network,
        )  # fmt: skip
        popen = dict(env={"PATH": "/usr/bin:/bin"}, stdout=subprocess.DEVNULL)
        began = time.perf_counter()
        if own_network:
            proxy = network.RunnerApiProxy(
                work.api / network.SOCKET_NAME, settings.CHALK_RUNNER_SERVER_URL
            )
            process, attached = network.spawn(
                argv, slirp4netns=isolation.slirp4netns, log=work.root / "log", **popen
            )
            process.wait()
            attached.close()
            proxy.close()
        else:
            subprocess.run(argv, check=True, **popen)
        took = time.perf_counter() - began
        sandbox.remove_tree(work.root)
        return took

    for own_network in (False, True):  # warm both paths once
        start(own_network)
    figures: dict[bool, list[float]] = {False: [], True: []}
    for _ in range(args.samples):  # interleaved, so both see the same machine
        for own_network in (False, True):
            figures[own_network].append(start(own_network))
    sandbox.remove_tree(data)

    def pct(values: list[float], q: float) -> float:
        ordered = sorted(values)
        return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))] * 1000

    before, after = figures[False], figures[True]
    print(f"sandboxed `python -c pass`, {args.samples} samples each ({isolation.slirp4netns})")
    print(f"{'':24}{'p50 ms':>10}{'p99 ms':>10}")
    print(f"{'shared network (before)':24}{pct(before, 0.5):>10.1f}{pct(before, 0.99):>10.1f}")
    print(f"{'own network (after)':24}{pct(after, 0.5):>10.1f}{pct(after, 0.99):>10.1f}")
    print(
        f"{'after / before':24}{pct(after, 0.5) / pct(before, 0.5):>9.2f}×"
        f"{pct(after, 0.99) / pct(before, 0.99):>9.2f}×"
    )
    print(f"added per attempt: p50 {pct(after, 0.5) - pct(before, 0.5):+.1f} ms")
    print(
        f"RESULT samples={args.samples} own_p50_ms={pct(after, 0.5):.1f} "
        f"own_p99_ms={pct(after, 0.99):.1f} shared_p50_ms={pct(before, 0.5):.1f} "
        f"shared_p99_ms={pct(before, 0.99):.1f} p50_ratio={pct(after, 0.5) / pct(before, 0.5):.2f}"
    )


if __name__ == "__main__":
    main()
