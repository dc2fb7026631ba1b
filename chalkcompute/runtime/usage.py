"""CPU and memory of a run's processes, read from /proc (Linux: local workers and pods alike)."""

import os
import signal
from dataclasses import dataclass

_TICKS = os.sysconf("SC_CLK_TCK")
_PAGE = os.sysconf("SC_PAGE_SIZE")

# Set by the local executor when the runner owns its sandbox's PID namespace; its value is the
# sandbox's memory-backed folders (HOME and /tmp, tmpfs), separated by ":".
SANDBOXED = "CHALK_RUN_SCRATCH"


@dataclass(frozen=True)
class Usage:
    cpu_seconds: float
    rss_bytes: int  # the processes' resident memory, and what the scratch folders hold
    processes: int = 0
    scratch_bytes: int = 0


def _stat_fields(pid: str) -> list[str] | None:
    try:
        with open(f"/proc/{pid}/stat", "rb") as f:
            raw = f.read().decode("ascii", "replace")
    except OSError:
        return None
    # The command name may hold spaces and parentheses: split after its last ')'.
    return raw[raw.rindex(")") + 2 :].split()


class RunProcesses:
    """The processes a run's usage counts and its end stops.

    Outside a sandbox: the session of the function's process (the function runs in a session
    of its own). In a sandbox (`scratch` given): every process of the runner's PID namespace
    but the runner and the namespace's init, so a child that calls setsid() or daemonizes is
    still counted and still stopped; and what the memory-backed HOME and /tmp hold counts as
    memory, as a pod's memory-backed emptyDir does.
    """

    def __init__(self, session_id: int, scratch: str | None = None) -> None:
        self.session_id = session_id
        self.in_namespace = bool(scratch)
        self.scratch = [folder for folder in (scratch or "").split(":") if folder]
        self._own = {1, os.getpid()}

    def _pids(self):
        for pid in os.listdir("/proc"):
            if not pid.isdigit() or (self.in_namespace and int(pid) in self._own):
                continue
            fields = _stat_fields(pid)
            # fields[0] is state; session is field 6 of stat, index 3 here.
            if fields is None or (not self.in_namespace and int(fields[3]) != self.session_id):
                continue
            yield int(pid), fields

    def usage(self) -> Usage:
        """CPU time (with that of children already reaped: cutime/cstime) and memory."""
        cpu_ticks = rss_pages = count = 0
        for _, fields in self._pids():
            utime, stime, cutime, cstime = (int(x) for x in fields[11:15])
            cpu_ticks += utime + stime + cutime + cstime
            rss_pages += int(fields[21])
            count += 1
        scratch = sum(_used(folder) for folder in self.scratch)
        return Usage(
            cpu_seconds=cpu_ticks / _TICKS,
            rss_bytes=rss_pages * _PAGE + scratch,
            processes=count,
            scratch_bytes=scratch,
        )

    def signal(self, sig: int) -> None:
        if not self.in_namespace:
            try:
                os.killpg(self.session_id, sig)
            except (ProcessLookupError, PermissionError):
                pass
            return
        for _ in range(3):  # a process may fork while the others are signalled
            pids = [pid for pid, _ in self._pids()]
            for pid in pids:
                try:
                    os.kill(pid, sig)
                except (ProcessLookupError, PermissionError):
                    pass
            if not pids or sig != signal.SIGKILL:
                return


def _used(folder: str) -> int:
    try:
        found = os.statvfs(folder)
    except OSError:
        return 0
    return (found.f_blocks - found.f_bfree) * found.f_frsize
