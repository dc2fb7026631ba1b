"""A process that dies with its parent: workers with the platform, runners with their worker,
functions with their runner. No run outlives what started it."""

import signal
import sys

_PR_SET_PDEATHSIG = 1


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
