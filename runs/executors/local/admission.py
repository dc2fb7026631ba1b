"""Admission: a local run starts when its cpu and memory requests fit what is free.

The runs worker treats its machine as a Kubernetes node treats itself: its capacity is the
machine's cores and memory (or CHALK_LOCAL_CPU / CHALK_LOCAL_MEMORY), and each run holds its
requests (`cpu=`, `memory=` on the decorator; CHALK_LOCAL_DEFAULT_CPU / _MEMORY when it has
none) from before its runner starts until it ends. A run that does not fit waits, and says
in its log what for; one that could never fit fails at once. CHALK_LOCAL_MAX_RUNS bounds how
many hold at once, whatever they ask.

Requests are what runs are promised, not what they use: as on Kubernetes, the memory limit
(the runner's check and RLIMIT_DATA) keeps a run within its request.
"""

import math
import os
import threading
from collections.abc import Callable
from dataclasses import dataclass
from decimal import Decimal
from pathlib import Path

from django.conf import settings
from django.core.exceptions import ImproperlyConfigured

from chalkcompute.quantities import InvalidQuantityError, parse_cpu, parse_memory, parse_quantity
from runs.limits import run_memory_limit

WAIT_CHECK_SECONDS = 2.0  # a waiting run looks again at least this often (cancels, heartbeats)


@dataclass(frozen=True)
class Resources:
    cpu: Decimal  # cores
    memory: int  # bytes


def requests_of(cpu: str | None, memory: str | None) -> Resources:
    """What a run of a version holds: its requests, or the defaults where it has none."""
    return Resources(
        cpu=parse_quantity(parse_cpu(cpu or settings.CHALK_LOCAL_DEFAULT_CPU), "cpu"),
        memory=run_memory_limit(memory),
    )


def machine_capacity() -> Resources:
    """CHALK_LOCAL_CPU and CHALK_LOCAL_MEMORY, or what this machine (its cgroup, if it is
    limited) offers: the cores this process may use and its memory."""
    cpu, memory = settings.CHALK_LOCAL_CPU, settings.CHALK_LOCAL_MEMORY
    try:
        cores = parse_quantity(parse_cpu(cpu), "cpu") if cpu else _machine_cores()
        size = int(parse_quantity(parse_memory(memory), "memory")) if memory else _machine_memory()
        requests_of(None, None)  # the defaults must parse too
    except InvalidQuantityError as exc:
        raise ImproperlyConfigured(f"the local executor's capacity or defaults: {exc}") from None
    return Resources(cpu=cores, memory=size)


def _machine_cores() -> Decimal:
    cores = Decimal(len(os.sched_getaffinity(0)))
    quota = _cgroup_value("cpu.max")  # "max 100000" or "200000 100000"
    if quota and not quota.startswith("max"):
        limit, period = quota.split()[:2]
        cores = min(cores, Decimal(limit) / Decimal(period))
    return cores


def _machine_memory() -> int:
    with open("/proc/meminfo") as meminfo:
        line = next(line for line in meminfo if line.startswith("MemTotal:"))
    total = int(line.split()[1]) * 1024
    limit = _cgroup_value("memory.max")
    if limit and limit.isdigit():
        total = min(total, int(limit))
    return total


def _cgroup_value(name: str) -> str | None:
    """A value of this process's cgroup (v2), if it can be read."""
    try:
        group = Path("/proc/self/cgroup").read_text().strip().split("::", 1)[1]
        return (Path("/sys/fs/cgroup") / group.lstrip("/") / name).read_text().strip()
    except (OSError, IndexError, ValueError):
        return None


def cpu_words(cores: Decimal) -> str:
    return f"{cores.normalize():f}" if cores >= 1 else f"{int(cores * 1000)}m"


def memory_words(size: int) -> str:
    for unit, scale in (("Gi", 2**30), ("Mi", 2**20)):
        if size >= scale:
            return f"{math.floor(size / scale * 10) / 10:g}{unit}"
    return f"{size}B"


class Admission:
    """What the runs of one worker hold, and who may start. Thread-safe: the runs worker has a
    thread per run."""

    def __init__(self, capacity: Resources, max_runs: int) -> None:
        self.capacity = capacity
        self.max_runs = max_runs
        self._held: dict[int, Resources] = {}
        self._changed = threading.Condition()

    def never_fits(self, wanted: Resources) -> str | None:
        """Why a run asking for `wanted` could never start here, if it could not."""
        if wanted.cpu > self.capacity.cpu:
            return (
                f"it asks for {cpu_words(wanted.cpu)} cpu; the local executor has "
                f"{cpu_words(self.capacity.cpu)} (CHALK_LOCAL_CPU)"
            )
        if wanted.memory > self.capacity.memory:
            return (
                f"it asks for {memory_words(wanted.memory)} of memory; the local executor has "
                f"{memory_words(self.capacity.memory)} (CHALK_LOCAL_MEMORY)"
            )
        return None

    def _shortfall(self, wanted: Resources) -> str | None:
        """What a run asking for `wanted` waits for now, or None when it fits. Locked."""
        if len(self._held) >= self.max_runs:
            return (
                f"waiting for a run to end: {len(self._held)} runs are running, the most at once "
                "(CHALK_LOCAL_MAX_RUNS)"
            )
        cpu = sum((held.cpu for held in self._held.values()), Decimal(0))
        if cpu + wanted.cpu > self.capacity.cpu:
            return (
                f"waiting for {cpu_words(wanted.cpu)} cpu: {cpu_words(cpu)} of "
                f"{cpu_words(self.capacity.cpu)} held by other runs"
            )
        memory = sum(held.memory for held in self._held.values())
        if memory + wanted.memory > self.capacity.memory:
            return (
                f"waiting for {memory_words(wanted.memory)} of memory: {memory_words(memory)} of "
                f"{memory_words(self.capacity.memory)} held by other runs"
            )
        return None

    def hold(self, key: int, wanted: Resources, waiting: Callable[[str], bool]) -> bool:
        """Holds `wanted` for `key` once it fits. Until then calls `waiting(why)` at once and
        every few seconds, and gives up (False) when it answers False (the run was cancelled)."""
        while True:
            with self._changed:
                why = self._shortfall(wanted)
                if why is None:
                    self._held[key] = wanted
                    return True
            if not waiting(why):
                return False
            with self._changed:
                self._changed.wait_for(lambda: self._shortfall(wanted) is None, WAIT_CHECK_SECONDS)

    def release(self, key: int) -> None:
        with self._changed:
            if self._held.pop(key, None) is not None:
                self._changed.notify_all()

    def held(self) -> Resources:
        with self._changed:
            return Resources(
                cpu=sum((held.cpu for held in self._held.values()), Decimal(0)),
                memory=sum(held.memory for held in self._held.values()),
            )


_admission: Admission | None = None
_admission_lock = threading.Lock()


def admission() -> Admission:
    """This worker's admission, made on first use from the settings."""
    global _admission
    with _admission_lock:
        if _admission is None:
            _admission = Admission(machine_capacity(), settings.CHALK_LOCAL_MAX_RUNS)
        return _admission
