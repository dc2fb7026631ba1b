"""CPU and memory of a process tree, read from /proc (Linux: local workers and pods alike)."""

import os
from dataclasses import dataclass

_TICKS = os.sysconf("SC_CLK_TCK")
_PAGE = os.sysconf("SC_PAGE_SIZE")


@dataclass(frozen=True)
class Usage:
    cpu_seconds: float
    rss_bytes: int


def _stat_fields(pid: str) -> list[str] | None:
    try:
        with open(f"/proc/{pid}/stat", "rb") as f:
            raw = f.read().decode("ascii", "replace")
    except OSError:
        return None
    # The command name may hold spaces and parentheses: split after its last ')'.
    return raw[raw.rindex(")") + 2 :].split()


def session_usage(session_id: int) -> Usage:
    """Sums CPU time and resident memory of every process in the session.

    The user's function runs in its own session, so processes it spawns are counted too;
    the CPU time of children it already reaped is in its cutime/cstime.
    """
    cpu_ticks = 0
    rss_pages = 0
    for pid in os.listdir("/proc"):
        if not pid.isdigit():
            continue
        fields = _stat_fields(pid)
        # fields[0] is state; session is field 6 of stat, index 3 here.
        if fields is None or int(fields[3]) != session_id:
            continue
        utime, stime, cutime, cstime = (int(x) for x in fields[11:15])
        cpu_ticks += utime + stime + cutime + cstime
        rss_pages += int(fields[21])
    return Usage(cpu_seconds=cpu_ticks / _TICKS, rss_bytes=rss_pages * _PAGE)
