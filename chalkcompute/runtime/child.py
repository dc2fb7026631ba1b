"""The process that runs the user's function, started by the runner (never by users).

It loads the deployed module from its file, waits for the start time (CHALK_START_AT: the
runner is started a little ahead of a scheduled slot), calls the entrypoint with no arguments,
and reports through the file descriptor in CHALK_EVENTS_FD, one JSON per line: what Python
code prints and `chalk_logger` records, in the order they happened, then the result (a return,
or the exception with its traceback). Output written to the file descriptors directly (by a
subprocess, say) still reaches the runner through the stdout and stderr pipes.

The events (the runner masks secrets in every text of them):
- {"kind": "started", "ts"} as the process starts, {"kind": "ready", "ts"} once the module is
  loaded, before the wait for the start time;
- {"kind": "line", "stream": "stdout"|"stderr", "ts", "text"}: printed text, a line with its
  "\n", or a part of one (on a flush, or every PIECE_CHARS of a long line);
- {"kind": "log", "level", "levelno", "ts", "text", "more"}: a logging record (chalk_logger's
  from DEBUG, every other logger's from INFO, as Chalk's runtime logs them; a record of
  another logger than chalk_logger starts with its logger's name), a long one in parts of
  PIECE_CHARS, "more" on every part but its last;
- {"kind": "result", "ok": true, "return", "return_format"} or {"kind": "result", "ok": false,
  "error_type", "error_message", "error_message_cut", "traceback", "traceback_cut"}: the
  texts cut to their limits ("_cut" true), the traceback keeping its end; "return" the
  value's JSON or repr (returns.py), null for None.
"""

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

from chalkcompute.runtime import returns

MAX_ERROR_MESSAGE = 16_384
MAX_TRACEBACK = 65_536
PIECE_CHARS = 16_384  # the most text in one event: the runner reads events of bounded size


class _EventWriter:
    def __init__(self, fd: int) -> None:
        self._file = os.fdopen(fd, "w", buffering=1, encoding="utf-8", errors="replace")
        self._lock = threading.Lock()  # threads of the function log and print too

    def send(self, *events: dict) -> None:
        """Sends events one after the other, no other thread's in between."""
        with self._lock:
            for event in events:
                self._file.write(json.dumps(event) + "\n")
            self._file.flush()


class _LinesToEvents:
    """Stands in for sys.stdout / sys.stderr: each complete line becomes an event, so prints
    and log records keep their order. Partial lines wait for their newline or a flush, or go
    in parts of PIECE_CHARS."""

    def __init__(self, events: _EventWriter, stream: str, original) -> None:
        self.events = events
        self.stream = stream
        self.original = original
        self.partial = ""
        self.lock = threading.Lock()

    def write(self, text: str) -> int:
        if not isinstance(text, str):
            raise TypeError(f"write() argument must be str, not {type(text).__name__}")
        with self.lock:
            pieces = []
            start, size = 0, len(text)
            while start < size:
                room = PIECE_CHARS - len(self.partial)  # partial is always shorter
                end = text.find("\n", start, start + room)
                if end < 0 and size - start < room:
                    self.partial += text[start:]
                    break
                end = start + room if end < 0 else end + 1
                pieces.append(self.partial + text[start:end])
                self.partial, start = "", end
                if len(pieces) == 64:  # a long text goes as it is cut, not copied whole
                    self._send(pieces)
                    pieces = []
            self._send(pieces)
        return len(text)

    def flush(self) -> None:
        with self.lock:
            partial, self.partial = self.partial, ""
            self._send([partial] if partial else [])

    def _send(self, pieces: list[str]) -> None:
        if pieces:
            now = time.time()
            self.events.send(
                *({"kind": "line", "stream": self.stream, "ts": now, "text": p} for p in pieces)
            )

    def __getattr__(self, name: str):
        return getattr(self.original, name)  # fileno, buffer, encoding, isatty …


class _RunLogHandler(logging.Handler):
    """Sends logging records to the runner, which puts them in the run's log with their level:
    chalk_logger's as their message, any other logger's after its name ("helpers.rates: …")."""

    def __init__(self, events: _EventWriter) -> None:
        super().__init__(logging.NOTSET)
        self.events = events
        self.setFormatter(logging.Formatter("%(message)s"))
        self.named = logging.Formatter("%(name)s: %(message)s")

    def emit(self, record: logging.LogRecord) -> None:
        try:
            chalk = record.name == "chalk" or record.name.startswith("chalk.")
            text = (self.format if chalk else self.named.format)(record)
            starts = range(0, len(text), PIECE_CHARS) if text else [0]
            self.events.send(
                *(
                    {
                        "kind": "log",
                        "ts": record.created,
                        "level": record.levelname,
                        "levelno": record.levelno,  # the runner maps custom levels by it
                        "text": text[start : start + PIECE_CHARS],
                        "more": start + PIECE_CHARS < len(text),
                    }
                    for start in starts
                )
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
    # One handler, on the root logger: every logger's records reach it (INFO and up, the
    # root's level, unless a logger sets its own), chalk_logger's from DEBUG.
    root = logging.getLogger()
    root.handlers[:] = [_RunLogHandler(events)]
    root.setLevel(logging.INFO)
    logging.getLogger("chalk").setLevel(logging.DEBUG)
    events.send({"kind": "started", "ts": time.time()})
    try:
        function = _load(path, entrypoint)
        events.send({"kind": "ready", "ts": time.time()})
        time.sleep(max(0.0, float(os.environ.get("CHALK_START_AT", "0")) - time.time()))
        result = function()
        if inspect.isawaitable(result):
            import asyncio  # here: most functions are not async, and it costs each run 10 ms

            result = asyncio.run(_await(result))
    except BaseException as exc:  # noqa: BLE001 - every failure is reported, SystemExit too
        if isinstance(exc, SystemExit) and exc.code in (None, 0):
            sys.stdout.flush()
            sys.stderr.flush()
            events.send({"kind": "result", "ok": True, "return": None})
            return 0
        sys.stdout.flush()
        sys.stderr.flush()
        message = _text(str, exc)
        trace = "".join(traceback.format_exception(exc))
        events.send(
            {
                "kind": "result",
                "ok": False,
                "error_type": f"{type(exc).__module__}.{type(exc).__qualname__}".removeprefix(
                    "builtins."
                ),
                "error_message": message[:MAX_ERROR_MESSAGE],
                "error_message_cut": len(message) > MAX_ERROR_MESSAGE,
                "traceback": trace[-MAX_TRACEBACK:],
                "traceback_cut": len(trace) > MAX_TRACEBACK,
            }
        )
        return 1
    sys.stdout.flush()
    sys.stderr.flush()
    events.send({"kind": "result", "ok": True, **_returned(result)})
    return 0


def _returned(value: object) -> dict:
    """The return's text and format (returns.py): its JSON, else its repr, cut to the cap."""
    if value is None:
        return {"return": None}
    try:
        text, format = json.dumps(value, ensure_ascii=False, allow_nan=False), returns.JSON
    except Exception:  # noqa: BLE001 - not JSON (a dict subclass's items() may raise anything)
        text, format = _text(repr, value), returns.REPR
    if returns.size(text) > returns.MAX_RETURN_BYTES:
        text, format = returns.cut(text), returns.CUT
    return {"return": text, "return_format": format}


def _text(show, value: object) -> str:
    """str() or repr() of a value whose own method may fail."""
    try:
        return show(value)
    except Exception as exc:  # noqa: BLE001 - the result is reported anyway
        return f"<{show.__name__}() of {type(value).__qualname__} failed: {type(exc).__name__}>"


async def _await(awaitable):
    return await awaitable


if __name__ == "__main__":
    sys.exit(main())
