"""The process that runs the user's function, started by the runner (never by users).

It loads the deployed module from its file, waits for the start time (CHALK_START_AT: the
runner is started a little ahead of a scheduled slot), calls the entrypoint with no arguments,
and reports through the file descriptor in CHALK_EVENTS_FD, one JSON per line: what Python
code prints and `chalk_logger` records, in the order they happened, then the result (a return,
or the exception with its traceback). Output written to the file descriptors directly (by a
subprocess, say) still reaches the runner through the stdout and stderr pipes.
"""

import asyncio
import importlib.util
import inspect
import json
import logging
import os
import sys
import threading
import time
import traceback
from pathlib import Path

MAX_RETURN_REPR = 2000


class _EventWriter:
    def __init__(self, fd: int) -> None:
        self._file = os.fdopen(fd, "w", buffering=1, encoding="utf-8", errors="replace")
        self._lock = threading.Lock()  # threads of the function log and print too

    def send(self, event: dict) -> None:
        line = json.dumps(event) + "\n"
        with self._lock:
            self._file.write(line)
            self._file.flush()


class _LinesToEvents:
    """Stands in for sys.stdout / sys.stderr: each complete line becomes an event, so prints
    and log records keep their order. Partial lines wait for their newline or a flush."""

    def __init__(self, events: _EventWriter, stream: str, original) -> None:
        self.events = events
        self.stream = stream
        self.original = original
        self.partial = ""
        self.lock = threading.Lock()

    def write(self, text: str) -> int:
        with self.lock:
            *lines, self.partial = (self.partial + text).split("\n")
        for line in lines:
            self.events.send(
                {"kind": "line", "stream": self.stream, "ts": time.time(), "text": line}
            )
        return len(text)

    def flush(self) -> None:
        with self.lock:
            partial, self.partial = self.partial, ""
        if partial:
            self.events.send(
                {"kind": "line", "stream": self.stream, "ts": time.time(), "text": partial}
            )

    def __getattr__(self, name: str):
        return getattr(self.original, name)  # fileno, buffer, encoding, isatty …


class _RunLogHandler(logging.Handler):
    """Sends chalk_logger records to the runner, which puts them in the run's log."""

    def __init__(self, events: _EventWriter) -> None:
        super().__init__(logging.DEBUG)
        self.events = events
        self.setFormatter(logging.Formatter("%(message)s"))

    def emit(self, record: logging.LogRecord) -> None:
        try:
            text = self.format(record)
            self.events.send(
                {"kind": "log", "ts": record.created, "level": record.levelname, "text": text}
            )
        except Exception:  # a logging call must never break the user's function
            self.handleError(record)


def _load(path: Path, entrypoint: str):
    spec = importlib.util.spec_from_file_location(path.stem, path)
    module = importlib.util.module_from_spec(spec)
    sys.modules[path.stem] = module
    sys.path.insert(0, str(path.parent))
    spec.loader.exec_module(module)
    target = getattr(module, entrypoint, None)
    if target is None:
        raise LookupError(f"the module {path.name} has no function {entrypoint!r} at module level")
    return getattr(target, "fn", target)  # a ChalkFunction wraps the original function


def main() -> int:
    path, entrypoint = Path(sys.argv[1]), sys.argv[2]
    events = _EventWriter(int(os.environ["CHALK_EVENTS_FD"]))
    sys.stdout = _LinesToEvents(events, "stdout", sys.stdout)
    sys.stderr = _LinesToEvents(events, "stderr", sys.stderr)
    chalk_logger = logging.getLogger("chalk")
    chalk_logger.handlers[:] = [_RunLogHandler(events)]
    chalk_logger.setLevel(logging.DEBUG)
    chalk_logger.propagate = False
    events.send({"kind": "started", "ts": time.time()})
    try:
        function = _load(path, entrypoint)
        time.sleep(max(0.0, float(os.environ.get("CHALK_START_AT", "0")) - time.time()))
        result = function()
        if inspect.isawaitable(result):
            result = asyncio.run(_await(result))
    except BaseException as exc:  # noqa: BLE001 - every failure is reported, SystemExit too
        if isinstance(exc, SystemExit) and exc.code in (None, 0):
            events.send({"kind": "result", "ok": True, "return": None})
            return 0
        sys.stdout.flush()
        sys.stderr.flush()
        events.send(
            {
                "kind": "result",
                "ok": False,
                "error_type": f"{type(exc).__module__}.{type(exc).__qualname__}".removeprefix(
                    "builtins."
                ),
                "error_message": str(exc),
                "traceback": "".join(traceback.format_exception(exc)),
            }
        )
        return 1
    sys.stdout.flush()
    sys.stderr.flush()
    events.send(
        {
            "kind": "result",
            "ok": True,
            "return": None if result is None else repr(result)[:MAX_RETURN_REPR],
        }
    )
    return 0


async def _await(awaitable):
    return await awaitable


if __name__ == "__main__":
    sys.exit(main())
