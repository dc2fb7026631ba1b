"""`python -m chalkcompute.runtime`: runs one attempt of a function, on every executor.

1. Fetches the attempt (code, entrypoint, secrets, limits) from the Chalkweb server with the
   token of that one attempt: on an inherited pipe (CHALK_ATTEMPT_TOKEN_FD, the local
   executor), in a file deleted once read (CHALK_ATTEMPT_TOKEN_FILE), or CHALK_ATTEMPT_TOKEN.
   No CHALK_ATTEMPT_TOKEN* variable stays in its environment, and the runner makes itself not
   dumpable: the function, its child with the same uid, cannot read the token from
   /proc/<runner>/environ or /proc/<runner>/mem.
2. Runs the function in a child process in its own session, the secrets and the run's facts
   (run_context.py) in its environment.
3. Every second posts a heartbeat: new stdout/stderr/chalk_logger lines (secret values masked,
   capped per attempt) and a CPU/RSS sample. The answer says whether the run was cancelled.
   Output is read in chunks of at most READ_BYTES and cut into lines of at most
   protocol.MAX_LINE_CHARS, and lines wait for a heartbeat only up to MAX_PENDING_BYTES (then the
   function waits to write), so a long line without a newline costs the runner no memory.
4. Enforces the timeout (SIGTERM, then SIGKILL after a grace period) and the memory limit.
5. Reports the outcome: a return value (returns.py), or the exception's type, message and
   traceback, and the exit code. The fetch, the last lines and the report are retried while
   the server does not answer, for up to protocol.SERVER_PATIENCE_SECONDS (a web restarted
   during the run loses none of them).

One Masker (masking.py) masks every path: the stdout and stderr pipes (what the function or its
subprocesses write to the file descriptors), the lines Python code prints and the chalk_logger
records (through the events pipe), the exception's message and traceback and the return value.
Each stream of text is masked as a stream, so a secret split across two writes is masked too.
"""

import base64
import codecs
import enum
import json
import os
import random
import select
import signal
import subprocess
import sys
import tempfile
import threading
import time
import urllib.error
import urllib.request
from dataclasses import dataclass
from pathlib import Path

from chalkcompute import run_context, words
from chalkcompute.client import CrossOriginRedirectError, urlopen
from chalkcompute.runtime import protocol, returns
from chalkcompute.runtime.masking import Masker, MaskingStream
from chalkcompute.runtime.parent import die_with_parent, not_dumpable
from chalkcompute.runtime.protocol import AttemptDocument
from chalkcompute.runtime.usage import SANDBOXED, RunProcesses, Usage

# A runner prepared ahead of its slot beats every protocol.WAITING_HEARTBEAT_SECONDS while it
# waits, then once in the LAST_CALL window before the slot: a pause or a deploy that takes the
# slot away is heard then, and hundreds of waiting runners do not call at once.
LAST_CALL_SECONDS = (2.0, 1.0)
CHECK_SECONDS = 0.1
WAITING_CHECK_SECONDS = 1.0
KILL_GRACE_SECONDS = 5.0
DRAIN_SECONDS = 10.0  # after the function's end, for the pipes to be read to their end
READ_BYTES = 65_536  # the most read from a pipe at once
MAX_EVENT_BYTES = 4 * 2**20  # an event line longer than this is dropped (the child's are short)
IDLE_SECONDS = 0.25  # a pipe quiet this long: its partial line goes (not a possible secret)
PARTIAL_LINE_SECONDS = 1.0  # a line without its newline this long is logged as it is so far
MAX_PENDING_BYTES = 2 * 2**20  # of lines waiting for a heartbeat; then readers wait for room
# Logging's other names for two of the protocol's levels.
LEVEL_NUMBERS = protocol.LEVEL_NUMBERS | {"WARN": 30, "FATAL": 50}


class RunnerApi:
    """The runner's side of the runner API: JSON over HTTP with the attempt's bearer token;
    through `unix_socket` (CHALK_SERVER_SOCKET) when the sandbox has no other way out to it."""

    def __init__(self, server_url: str, token: str, unix_socket: str | None = None) -> None:
        self.base = server_url.rstrip("/") + protocol.API_PATH
        self.token = token
        self.unix_socket = unix_socket

    def call(
        self,
        method: str,
        path: str,
        body: dict | None = None,
        patience: float = protocol.SERVER_PATIENCE_SECONDS,
    ) -> dict:
        """Retries connection errors and 5xx with backoff for up to `patience` seconds."""
        data = None if body is None else json.dumps(body).encode()
        deadline = time.monotonic() + patience
        delay = 0.2
        while True:
            request = urllib.request.Request(
                self.base + path,
                data=data,
                method=method,
                headers={
                    "Authorization": f"Bearer {self.token}",
                    "Content-Type": "application/json",
                },
            )
            try:
                with urlopen(request, timeout=30, unix_socket=self.unix_socket) as response:
                    return json.loads(response.read() or b"{}")
            except CrossOriginRedirectError as exc:  # not followed, and not worth retrying
                raise RunnerError(
                    f"{method} {path}: HTTP {exc.status}: a redirect to another origin "
                    f"({exc.location}) is not followed with the attempt's token; "
                    "CHALK_SERVER_URL must be the server's own address"
                ) from None
            except urllib.error.HTTPError as exc:
                if exc.code < 500 or time.monotonic() > deadline:
                    detail = exc.read().decode("utf-8", "replace")[:500]
                    raise RunnerError(f"{method} {path}: HTTP {exc.code}: {detail}") from None
            except (urllib.error.URLError, OSError) as exc:
                if time.monotonic() > deadline:
                    raise RunnerError(f"{method} {path}: server unreachable: {exc}") from None
            time.sleep(delay)
            delay = min(delay * 2, 5.0)


class RunnerError(RuntimeError):
    pass


class LogBuffer:
    """Lines waiting to be posted, numbered in order, volume capped. Its lines come masked
    and cut (_Channel). Readers wait while MAX_PENDING_BYTES are waiting for a heartbeat.

    The cap is the server's (max_log_bytes), counted as the server counts (stored_size): the
    line that passes it is still sent, for the server to drop it and write its "log truncated"
    line, and nothing after it; nor anything once a heartbeat's answer says it is truncated."""

    def __init__(self, max_bytes: int) -> None:
        self.max_bytes = max_bytes
        self.bytes = 0
        self.truncated = False
        self.closed = False
        self.next_seq = 0
        self.pending: list[dict] = []
        self.sizes: list[int] = []  # of each pending line as JSON, as the heartbeat sends it
        self.pending_bytes = 0
        self.lock = threading.Lock()
        self.room = threading.Condition(self.lock)

    def add(self, stream: str, text: str, level: str = "", ts: float | None = None) -> None:
        with self.room:
            while self.pending_bytes > MAX_PENDING_BYTES and not self.closed:
                self.room.wait(0.5)
            if self.truncated or self.closed:
                return
            self.bytes += protocol.stored_size(text)
            self.truncated = self.bytes > self.max_bytes
            line = {"ts": ts or time.time(), "stream": stream, "level": level, "text": text}
            self.pending.append(line)
            self.sizes.append(len(json.dumps(line)) + 2)
            self.pending_bytes += self.sizes[-1]

    def server_truncated(self) -> None:
        """The server drops the attempt's lines from now on: none is sent any more."""
        with self.room:
            self.truncated = True
            self.pending, self.sizes, self.pending_bytes = [], [], 0
            self.room.notify_all()

    def full(self) -> bool:
        """Enough lines for a heartbeat now."""
        return (
            len(self.pending) >= protocol.FLUSH_LINES
            or self.pending_bytes >= protocol.MAX_BATCH_BYTES
        )

    def take(self) -> tuple[int, list[dict]]:
        """The next batch: at most FLUSH_LINES lines and MAX_BATCH_BYTES of JSON (one line at
        least)."""
        with self.room:
            size = count = 0
            for line_size in self.sizes[: protocol.FLUSH_LINES]:
                size += line_size
                if count and size > protocol.MAX_BATCH_BYTES:
                    break
                count += 1
            lines, self.pending = self.pending[:count], self.pending[count:]
            taken, self.sizes = self.sizes[:count], self.sizes[count:]
            self.pending_bytes -= sum(taken)
            first = self.next_seq
            self.next_seq += len(lines)
            self.room.notify_all()
            return first, lines

    def put_back(self, first: int, lines: list[dict]) -> None:
        """A batch the server did not take goes back in front, keeping its numbers."""
        with self.room:
            sizes = [len(json.dumps(line)) + 2 for line in lines]
            self.pending, self.sizes = lines + self.pending, sizes + self.sizes
            self.pending_bytes += sum(sizes)
            self.next_seq = first

    def close(self) -> None:
        """No more lines: a reader still waiting for room drops what it holds."""
        with self.room:
            self.closed = True
            self.room.notify_all()


class _Channel:
    """One stream of text into the log: a pipe's, the lines Python prints to stdout or
    stderr, or chalk_logger records (`records`: each `end()` ends one, newlines and all).

    The text is masked as one stream, then cut into lines, a line longer than MAX_LINE_CHARS
    into lines of that many characters. What the masking holds back and an unfinished line go
    to the log at `end()`: at the end of the stream or of a record, or when the reader finds
    the stream quiet; a quiet stream keeps back a line's tail that may start a secret, until
    the rest comes or the stream ends. An unfinished line also goes once it is
    PARTIAL_LINE_SECONDS old (what the masking holds back stays: it joins the next line)."""

    def __init__(self, logs: LogBuffer, masker: Masker, stream: str, records: bool = False):
        self.logs = logs
        self.stream = stream
        self.records = records
        self.level = ""
        self.masking: MaskingStream = masker.stream()
        self.line: list[str] = []  # masked, waiting for the rest of their line
        self.line_chars = 0
        self.line_ts = 0.0
        self.line_started = 0.0
        self.ts = 0.0  # of the text being fed
        self.cut = False  # the last line logged was cut before its newline came
        self.record_open = False

    def feed(self, text: str, ts: float | None = None) -> None:
        if self.logs.truncated or self.logs.closed:
            return  # nothing more is logged: no need to mask it
        self.ts = ts or time.time()
        self.record_open = True
        self._take(self.masking.feed(text))
        if (
            not self.records
            and self.line_chars
            and time.monotonic() - self.line_started > PARTIAL_LINE_SECONDS
        ):
            self._emit(cut=True)

    def end(self, final: bool = False) -> None:
        if self.logs.truncated or self.logs.closed:
            return
        self._take(self.masking.flush(final=final or self.records))
        if self.records:
            if self.record_open and (self.line_chars or not self.cut):  # "" is a record too
                self.line[-1:] = [piece.rstrip("\n") for piece in self.line[-1:]]
                self._emit(cut=False)
            self.record_open = self.cut = False
        elif self.line_chars:
            self._emit(cut=True)

    def _take(self, masked: str) -> None:
        if self.records:
            self._append(masked)
            return
        *lines, rest = masked.split("\n")
        for line in lines:
            # A newline right after a cut ends the line already logged: no empty line.
            if line or self.line_chars or not self.cut:
                self._append(line)
                self._emit(cut=False)
            self.cut = False
        self._append(rest)

    def _append(self, text: str) -> None:
        while text:
            if not self.line_chars:
                self.line_ts, self.line_started = self.ts, time.monotonic()
            room = protocol.MAX_LINE_CHARS - self.line_chars
            piece, text = text[:room], text[room:]
            self.line.append(piece)
            self.line_chars += len(piece)
            if self.line_chars >= protocol.MAX_LINE_CHARS:
                self._emit(cut=True)

    def _emit(self, cut: bool) -> None:
        ts = self.line_ts if self.line_chars else self.ts
        self.logs.add(self.stream, "".join(self.line), level=self.level, ts=ts)
        self.line, self.line_chars, self.cut = [], 0, cut


def _read_pipe(fd: int, on_chunk, on_quiet) -> None:
    """Reads `fd` to its end, at most READ_BYTES at a time; `on_quiet()` once when nothing
    came for IDLE_SECONDS."""
    poller = select.poll()
    poller.register(fd, select.POLLIN | select.POLLHUP | select.POLLERR)
    quiet = False
    try:
        while True:
            if not poller.poll(IDLE_SECONDS * 1000):
                if not quiet:
                    on_quiet()
                    quiet = True
                continue
            quiet = False
            chunk = os.read(fd, READ_BYTES)
            if not chunk:
                return
            on_chunk(chunk)
    finally:
        os.close(fd)


def _read_output(fd: int, channel: _Channel) -> None:
    """A stdout or stderr pipe: UTF-8 (what is not shows as U+FFFD), into its channel."""
    decoder = codecs.getincrementaldecoder("utf-8")("replace")
    _read_pipe(fd, lambda chunk: channel.feed(decoder.decode(chunk)), channel.end)
    channel.feed(decoder.decode(b"", final=True))
    channel.end(final=True)


def _read_event_lines(fd: int, on_event, on_quiet) -> None:
    """The events pipe: one JSON per line; a line longer than MAX_EVENT_BYTES is dropped."""
    partial = bytearray()
    dropping = False

    def on_chunk(chunk: bytes) -> None:
        nonlocal dropping
        start = 0
        while True:
            end = chunk.find(b"\n", start)
            if end < 0:
                if not dropping:
                    partial.extend(chunk[start:])
                    if len(partial) > MAX_EVENT_BYTES:
                        partial.clear()
                        dropping = True
                return
            if not dropping:
                partial.extend(chunk[start:end])
                on_event(bytes(partial))
            partial.clear()
            dropping = False
            start = end + 1

    _read_pipe(fd, on_chunk, on_quiet)


class Stop(enum.Enum):
    """Why the runner stops a function before it ends by itself."""

    OUT_OF_MEMORY = "out of memory"
    TOO_MANY_PROCESSES = "too many processes"
    TIMED_OUT = "timed out"
    CANCELLED = "cancelled"

    @property
    def status(self) -> str:
        """The attempt's status after such a stop."""
        return {Stop.TIMED_OUT: "timed_out", Stop.CANCELLED: "cancelled"}.get(self, "failed")

    @property
    def kills_at_once(self) -> bool:
        """A limit passed is enforced at once (SIGKILL); a timeout or a cancel lets the
        function end itself first (SIGTERM, then SIGKILL after a grace period)."""
        return self.status == "failed"


@dataclass(frozen=True)
class Stopped:
    """A stop of the function by the runner, and its reason in words for the run's page."""

    why: Stop
    reason: str


class Attempt:
    """Runs one attempt, as its document says, to its outcome."""

    def __init__(
        self, api: RunnerApi, document: AttemptDocument, ready_fd: int | None = None
    ) -> None:
        self.api = api
        self.document = document
        self.ready_fd = ready_fd  # told once the module is loaded (the local executor's)
        self.masker = Masker(document.secrets.values())
        self.logs = LogBuffer(document.max_log_bytes)
        # What Python code prints and chalk_logger records come in order on the events pipe;
        # os.write to the file descriptors (and subprocesses) through the stdout/stderr pipes.
        self.printed = {
            stream: _Channel(self.logs, self.masker, stream) for stream in protocol.RUNNER_STREAMS
        }
        self.records = _Channel(self.logs, self.masker, protocol.STDOUT, records=True)
        self._active: _Channel | None = None  # the events' channel that may hold text back
        self.result: dict | None = None
        self.samples: list[dict] = []
        self.peak_rss = 0
        self.cpu_seconds = 0.0
        self.cancelled = False
        self._last_sample: tuple[float, float] | None = None

    def _on_event(self, raw: bytes) -> None:
        """One event of the child (child.py). An event of another channel than the last one
        first ends what that one holds back, so the log keeps the order of the events."""
        try:
            event = json.loads(raw)
        except (ValueError, RecursionError):  # not the child's: something wrote to its fd
            return
        if not isinstance(event, dict):
            return
        kind, ts = event.get("kind"), _timestamp(event.get("ts"))
        if kind == "line" and event.get("stream") in protocol.RUNNER_STREAMS:
            channel = self._switch(self.printed[event["stream"]])
            channel.feed(str(event.get("text", "")), ts)
        elif kind == "log":
            channel = self._switch(self.records)
            channel.level = _level(event.get("level"), event.get("levelno"))
            channel.feed(str(event.get("text", "")), ts)
            if not event.get("more"):  # the record's last piece
                channel.end()
        elif kind == "result":
            self._switch(None)
            self.result = event
        elif kind == "ready":
            self._tell_ready()

    def _tell_ready(self) -> None:
        if self.ready_fd is not None:
            fd, self.ready_fd = self.ready_fd, None
            try:
                os.write(fd, b"1")
            except OSError:
                pass
            os.close(fd)

    def _switch(self, channel: _Channel | None) -> _Channel | None:
        if self._active is not None and self._active is not channel:
            self._active.end()
        self._active = channel
        return channel

    def _events_quiet(self) -> None:
        if self._active is not None:
            self._active.end()

    def _read_events(self, fd: int) -> None:
        _read_event_lines(fd, self._on_event, self._events_quiet)
        for channel in (*self.printed.values(), self.records):
            channel.end(final=True)

    def _sample(self, usage: Usage) -> None:
        """Records a sample, with the CPU used since the previous one as % of one core."""
        moment = time.time()
        percent = 0.0
        if self._last_sample is not None:
            elapsed = moment - self._last_sample[0]
            if elapsed > 0:
                percent = max(0.0, (usage.cpu_seconds - self._last_sample[1]) / elapsed * 100)
        self._last_sample = (moment, usage.cpu_seconds)
        self.samples.append(
            {
                "ts": moment,
                "cpu_seconds": usage.cpu_seconds,
                "cpu_percent": round(percent, 1),
                "rss_bytes": usage.rss_bytes,
            }
        )

    def _heartbeat(self, final: bool = False) -> None:
        first, lines = self.logs.take()
        samples = self.samples[: protocol.MAX_HEARTBEAT_ITEMS]
        self.samples = self.samples[protocol.MAX_HEARTBEAT_ITEMS :]
        body = {"first_seq": first, "lines": lines, "samples": samples}
        try:
            # During the run a heartbeat tries for a few seconds and its lines wait for the
            # next one; the last lines wait for the server as long as the outcome does.
            answer = self.api.call(
                "POST",
                protocol.HEARTBEAT,
                body,
                patience=protocol.SERVER_PATIENCE_SECONDS if final else 5.0,
            )
        except RunnerError:
            self.logs.put_back(first, lines)
            self.samples = samples + self.samples
            if final:
                raise
            return
        if answer.get("cancel"):
            self.cancelled = True
        if answer.get("log_truncated"):
            self.logs.server_truncated()

    def run(self) -> dict:
        """Runs the function to its end and returns the outcome FINISH reports: writes its
        code in a work folder, starts it (child.py) with a thread reading each of its pipes,
        supervises it, then reads what its pipes still hold and sends the last lines."""
        document = self.document
        workdir = Path(tempfile.mkdtemp(prefix="chalk-run-"))
        _write_files(workdir, document.files)
        source_path = workdir / document.source_filename
        source_path.write_text(document.source)
        read_fd, write_fd = os.pipe()
        out_read, out_write = os.pipe()
        err_read, err_write = os.pipe()
        env = {**os.environ, **document.env, **document.secrets}
        for name in [name for name in env if name.startswith("CHALK_ATTEMPT_TOKEN")]:
            del env[name]  # the user's code never sees the runner's token
        env.update(
            {
                "CHALK_IN_RUN": "1",
                "CHALK_EVENTS_FD": str(write_fd),
                "CHALK_START_AT": str(document.start_at),
                "PYTHONUNBUFFERED": "1",
                # What current_run() reads, here and in every program the function starts.
                **run_context.environment(document.run),
            }
        )
        # The timeout counts from the start time: a runner prepared ahead of its slot waits.
        started = time.monotonic() + max(0.0, document.start_at - time.time())
        child = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "chalkcompute.runtime.child",
                str(source_path),
                document.entrypoint,
            ],
            stdin=subprocess.DEVNULL,
            stdout=out_write,
            stderr=err_write,
            pass_fds=(write_fd,),
            env=env,
            cwd=workdir,
            start_new_session=True,
            preexec_fn=die_with_parent,
        )
        for fd in (write_fd, out_write, err_write):
            os.close(fd)
        readers = [
            threading.Thread(
                target=_read_output,
                args=(fd, _Channel(self.logs, self.masker, stream)),
                daemon=True,
            )
            for fd, stream in zip((out_read, err_read), protocol.RUNNER_STREAMS, strict=True)
        ]
        readers.append(threading.Thread(target=self._read_events, args=(read_fd,), daemon=True))
        for reader in readers:
            reader.start()

        processes = RunProcesses(child.pid, os.environ.get(SANDBOXED))
        stopped = self._supervise(child, processes, started)
        processes.signal(signal.SIGKILL)  # no grandchild outlives the attempt
        # The pipes end once no process holds them; meanwhile full batches go out.
        drain_until = time.monotonic() + DRAIN_SECONDS
        while any(reader.is_alive() for reader in readers) and time.monotonic() < drain_until:
            if self.logs.full():
                self._heartbeat()
            time.sleep(0.02)
        self.logs.close()  # a reader still going (a process that left the session) is dropped
        self._heartbeat(final=True)
        while self.logs.pending or self.samples:
            self._heartbeat(final=True)
        return self._outcome(child.returncode, stopped)

    def _supervise(
        self, child: subprocess.Popen, processes: RunProcesses, started: float
    ) -> Stopped | None:
        """Watches the function's processes until the child ends, every CHECK_SECONDS: keeps
        their peak memory and CPU time, stops them at a limit (SIGKILL), a timeout or a cancel
        (SIGTERM, then SIGKILL after KILL_GRACE_SECONDS), and beats. Returns why it stopped
        them, or None when the function ended by itself. `started`: the start time, monotonic."""
        stopped: Stopped | None = None
        term_sent_at = None
        next_heartbeat = time.monotonic()
        while child.poll() is None:
            now = time.monotonic()
            usage = processes.usage()
            self.peak_rss = max(self.peak_rss, usage.rss_bytes)
            self.cpu_seconds = max(self.cpu_seconds, usage.cpu_seconds)
            if stopped is None:
                stopped = self._stop(usage, running_for=now - started)
                if stopped and stopped.why.kills_at_once:
                    processes.signal(signal.SIGKILL)
                elif stopped:
                    processes.signal(signal.SIGTERM)
                    term_sent_at = now
            elif term_sent_at is not None and now - term_sent_at > KILL_GRACE_SECONDS:
                processes.signal(signal.SIGKILL)
                term_sent_at = None
            if now >= next_heartbeat or self.logs.full():
                if now >= next_heartbeat:
                    self._sample(usage)
                    next_heartbeat = _next_heartbeat(now, started)
                self._heartbeat()
            if not self.logs.full():
                # Waiting for its slot (the module imported, its memory checked), a runner
                # looks once a second: hundreds wait together at the top of the hour.
                wait = WAITING_CHECK_SECONDS if now < started - WAITING_CHECK_SECONDS else 0
                time.sleep(max(CHECK_SECONDS, min(wait, next_heartbeat - now)))
        return stopped

    def _stop(self, usage: Usage, running_for: float) -> Stopped | None:
        """Whether the function must be stopped now, and why: past its memory or process limit,
        its timeout (`running_for` seconds since its start time), or cancelled."""
        document = self.document
        memory_limit = document.memory_limit_bytes
        max_processes = document.max_processes if os.environ.get(SANDBOXED) else None
        if memory_limit and usage.rss_bytes > memory_limit:
            return Stopped(Stop.OUT_OF_MEMORY, _out_of_memory(usage, document, memory_limit))
        if max_processes and usage.processes > max_processes:
            return Stopped(
                Stop.TOO_MANY_PROCESSES,
                f"too many processes: {usage.processes}, above the run's limit of "
                f"{max_processes} (CHALK_RUN_MAX_PROCESSES)",
            )
        if document.timeout and running_for > document.timeout:
            said = f"timed out after {document.timeout:g} seconds"
            if document.timeout_is_default:
                said += " (the default: set timeout= on the function for longer)"
            return Stopped(Stop.TIMED_OUT, said)
        if self.cancelled:
            return Stopped(Stop.CANCELLED, "cancelled while running")
        return None

    def _outcome(self, exit_code: int, stopped: Stopped | None) -> dict:
        outcome = {
            "exit_code": exit_code,
            "peak_memory_bytes": self.peak_rss,
            "cpu_seconds": round(self.cpu_seconds, 3),
            "log_truncated": self.logs.truncated,
            "error_type": "",
            "error_message": "",
            "traceback": "",
            "reason": "",
        }
        result = self.result or {}
        if stopped:
            outcome["status"], outcome["reason"] = stopped.why.status, stopped.reason
            if stopped.why is Stop.OUT_OF_MEMORY:
                outcome["error_type"] = "OutOfMemory"
                outcome["error_message"] = stopped.reason
        elif result.get("ok") and exit_code == 0:
            outcome["status"] = "succeeded"
            if isinstance(result.get("return"), str):
                outcome["return_value"], outcome["return_format"] = returns.kept(
                    result["return"], str(result.get("return_format")), self.masker
                )
        else:
            outcome["status"] = "failed"
            if result and not result.get("ok"):
                for key in ("error_type", "error_message", "traceback"):
                    outcome[key] = self._masked(result, key)
            elif exit_code < 0:
                outcome["reason"] = (
                    f"the function's process was killed by signal {signal.Signals(-exit_code).name}"
                )
            else:
                outcome["reason"] = (
                    f"the function's process exited with code {exit_code} without a result"
                )
        return outcome

    def _masked(self, result: dict, key: str) -> str:
        """A text of the result, masked. The child cuts a long one (`KEY_cut`): the traceback
        keeps its end, the others their start, and the cut shows as "…"."""
        text = str(result.get(key) or "")
        if not result.get(f"{key}_cut"):
            return self.masker.mask(text)
        if key == "traceback":
            return "…" + self.masker.mask(text, cut_start=True)
        return self.masker.mask(text, cut_end=True) + "…"


def _next_heartbeat(now: float, start: float) -> float:
    """When to beat next (monotonic): every HEARTBEAT_SECONDS once the start time is near;
    before it, every WAITING_HEARTBEAT_SECONDS and once at a moment of the LAST_CALL window."""
    earliest, latest = LAST_CALL_SECONDS
    last_call = start - earliest
    if now >= last_call:
        return now + protocol.HEARTBEAT_SECONDS
    return min(
        now + protocol.WAITING_HEARTBEAT_SECONDS, last_call + random.uniform(0, earliest - latest)
    )


def _timestamp(value: object) -> float | None:
    valid = isinstance(value, (int, float)) and not isinstance(value, bool)
    return float(value) if valid and 0 < value < 1e11 else None


def _out_of_memory(usage: Usage, document: AttemptDocument, limit: int) -> str:
    said = f"out of memory: used {words.size(usage.rss_bytes)}"
    if usage.scratch_bytes >= 2**20:  # the runner's own copy of the source is a few KiB
        said += (
            f" ({words.size(usage.scratch_bytes)} of it files in HOME and /tmp, which are memory)"
        )
    if document.memory:
        return f"{said}, above its memory limit {document.memory} ({words.size(limit)})"
    return (
        f"{said}, above the default memory limit {words.size(limit)} (set memory= on the function)"
    )


def _write_files(workdir: Path, files: list) -> None:
    """Writes the files shipped with the code (Image.add_local_*) in the working directory,
    which is the function's cwd and on its sys.path. The server checked the paths; a path
    that would still leave the folder is skipped."""
    root = workdir.resolve()
    for item in files:
        target = (root / item["path"]).resolve()
        if root not in target.parents:
            continue
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_bytes(base64.b64decode(item["content_base64"]))


def _level(name: object, number: object) -> str:
    """A record's level as one of the protocol's five: by its number (a custom level
    such as TRACE=5 or NOTICE=25 goes as the standard level at or below it), else its name."""
    if isinstance(number, bool) or not isinstance(number, int):
        text = str(name or "")
        number = LEVEL_NUMBERS.get(text)
        if number is None and text.startswith("Level ") and text[6:].lstrip("-").isdigit():
            number = int(text[6:])  # logging's name for a level without one
    if number is None:
        return "INFO"
    floors = sorted(protocol.LEVEL_NUMBERS.items(), key=lambda level: -level[1])
    return next((level for level, floor in floors if number >= floor), "DEBUG")


def _token() -> str:
    """The attempt's token, from the first of: the pipe CHALK_ATTEMPT_TOKEN_FD (read to its
    end and closed), the file CHALK_ATTEMPT_TOKEN_FILE (deleted once read, when it can be: a
    read-only mount stays), CHALK_ATTEMPT_TOKEN. Every CHALK_ATTEMPT_TOKEN* variable leaves
    the environment, so nothing the runner starts inherits one."""
    given = {
        name: os.environ.pop(name)
        for name in [name for name in os.environ if name.startswith("CHALK_ATTEMPT_TOKEN")]
    }
    if given.get("CHALK_ATTEMPT_TOKEN_FD"):
        with open(int(given["CHALK_ATTEMPT_TOKEN_FD"]), "rb") as pipe:
            return pipe.read().decode().strip()
    if given.get("CHALK_ATTEMPT_TOKEN_FILE"):
        path = Path(given["CHALK_ATTEMPT_TOKEN_FILE"])
        token = path.read_text().strip()
        try:
            path.unlink()
        except OSError:
            pass
        return token
    if "CHALK_ATTEMPT_TOKEN" not in given:
        raise KeyError("CHALK_ATTEMPT_TOKEN")
    return given["CHALK_ATTEMPT_TOKEN"]


def _ready_fd() -> int | None:
    """CHALK_READY_FD, taken out of the environment: the pipe on which the local executor
    learns that the function's module is loaded (the runner closes it when it ends)."""
    value = os.environ.pop("CHALK_READY_FD", "")
    return int(value) if value.isdigit() else None


def main() -> int:
    not_dumpable()
    ready_fd = _ready_fd()
    try:
        api = RunnerApi(
            os.environ["CHALK_SERVER_URL"], _token(), os.environ.get("CHALK_SERVER_SOCKET")
        )
    except KeyError as exc:
        print(
            f"chalkcompute.runtime: {exc.args[0]} is not set; the runner is started by Chalkweb",
            file=sys.stderr,
        )
        return 2
    try:
        document = AttemptDocument.from_json(api.call("GET", protocol.ATTEMPT))
    except (RunnerError, TypeError) as exc:  # TypeError: a document without a required key
        print(f"chalkcompute.runtime: cannot fetch the attempt: {exc}", file=sys.stderr)
        return 3
    attempt = Attempt(api, document, ready_fd)
    try:
        outcome = attempt.run()
    except Exception as exc:  # the runner's own failure still gets reported
        outcome = {
            "status": "failed",
            "reason": attempt.masker.mask(f"the runner failed: {type(exc).__name__}: {exc}"),
            "exit_code": None,
        }
    try:
        api.call("POST", protocol.FINISH, outcome)
    except RunnerError as exc:
        print(f"chalkcompute.runtime: cannot report the outcome: {exc}", file=sys.stderr)
        return 4
    return 0
