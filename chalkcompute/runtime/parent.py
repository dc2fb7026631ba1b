"""A process that dies with its parent: workers with the platform, runners with their worker,
functions with their runner. No run outlives what started it. And a runner that no process
of its uid may look into."""

import signal
import sys

_PR_SET_PDEATHSIG = 1
_PR_SET_DUMPABLE = 4


if sys.platform == "linux":
    import ctypes

    # Looked up once, here: die_with_parent runs between fork and exec in a worker of many
    # threads, where loading a library could wait forever on a lock another thread held.
    _prctl = ctypes.CDLL(None, use_errno=True).prctl
else:
    _prctl = None


def die_with_parent() -> None:
    """Asks Linux to SIGKILL this process when its parent (the thread that started it) dies;
    a no-op elsewhere."""
    if _prctl is not None:
        _prctl(_PR_SET_PDEATHSIG, signal.SIGKILL)


def not_dumpable() -> None:
    """Linux: no process of the same uid may read this one's memory or /proc files (environ,
    mem, fd): the function cannot take the token from its runner. A no-op elsewhere."""
    if _prctl is not None:
        _prctl(_PR_SET_DUMPABLE, 0, 0, 0, 0)
