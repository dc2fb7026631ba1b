"""The process that runs the user's function, started by the runner (never by users).

It loads the deployed module from its file, calls the entrypoint with no arguments, and
reports through the file descriptor in CHALK_EVENTS_FD: `chalk_logger` records with their
level, then the result (a return or the exception with its traceback), one JSON per line.
"""

import asyncio
import importlib.util
import inspect
import json
import logging
import os
import sys
import time
import traceback
from pathlib import Path

MAX_RETURN_REPR = 2000


class _EventWriter:
    def __init__(self, fd: int) -> None:
        self._file = os.fdopen(fd, "w", buffering=1, encoding="utf-8", errors="replace")

    def send(self, event: dict) -> None:
        self._file.write(json.dumps(event) + "\n")
        self._file.flush()


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
    chalk_logger = logging.getLogger("chalk")
    chalk_logger.handlers[:] = [_RunLogHandler(events)]
    chalk_logger.setLevel(logging.DEBUG)
    chalk_logger.propagate = False
    events.send({"kind": "started", "ts": time.time()})
    try:
        function = _load(path, entrypoint)
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
