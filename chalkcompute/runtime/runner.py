"""`python -m chalkcompute.runtime`: runs one attempt of a function, on every executor.

1. Fetches the attempt (code, entrypoint, secrets, limits) from the Chalkweb server with the
   token of that one attempt (CHALK_ATTEMPT_TOKEN or CHALK_ATTEMPT_TOKEN_FILE).
2. Runs the function in a child process in its own session, the secrets in its environment.
3. Every second posts a heartbeat: new stdout/stderr/chalk_logger lines (secret values masked,
   capped per attempt) and a CPU/RSS sample. The answer says whether the run was cancelled.
4. Enforces the timeout (SIGTERM, then SIGKILL after a grace period) and the memory limit.
5. Reports the outcome: a return, or the exception's type, message and traceback, and the
   exit code. A report that cannot be delivered is retried until the server answers.
"""

import json
import os
import signal
import subprocess
import sys
import tempfile
import threading
import time
import urllib.error
import urllib.request
from pathlib import Path

from chalkcompute.runtime.parent import die_with_parent
from chalkcompute.runtime.usage import Usage, session_usage

HEARTBEAT_SECONDS = 1.0
CHECK_SECONDS = 0.1
KILL_GRACE_SECONDS = 5.0
MAX_LINE_CHARS = 16_384
MASK = "********"
MIN_MASKED_LENGTH = 3  # masking "1" would blank every digit of the log
FLUSH_LINES = 500


class RunnerApi:
    """The runner's side of the runner API: JSON over HTTP with the attempt's bearer token."""

    def __init__(self, server_url: str, token: str) -> None:
        self.base = server_url.rstrip("/") + "/api/runner/v1/"
        self.token = token

    def call(
        self, method: str, path: str, body: dict | None = None, patience: float = 60.0
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
                with urllib.request.urlopen(request, timeout=30) as response:
                    return json.loads(response.read() or b"{}")
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
    """Lines waiting to be posted, numbered in order, secrets masked, volume capped."""

    def __init__(self, secrets: list[str], max_bytes: int) -> None:
        self.secrets = sorted(
            (s for s in secrets if len(s) >= MIN_MASKED_LENGTH), key=len, reverse=True
        )
        self.max_bytes = max_bytes
        self.bytes = 0
        self.truncated = False
        self.next_seq = 0
        self.pending: list[dict] = []
        self.lock = threading.Lock()

    def mask(self, text: str) -> str:
        for secret in self.secrets:
            text = text.replace(secret, MASK)
        return text

    def add(self, stream: str, text: str, level: str = "", ts: float | None = None) -> None:
        text = self.mask(text.rstrip("\n"))
        if len(text) > MAX_LINE_CHARS:
            text = text[:MAX_LINE_CHARS] + " …[line cut]"
        with self.lock:
            if self.truncated:
                return
            self.bytes += len(text.encode("utf-8", "replace"))
            if self.bytes > self.max_bytes:
                self.truncated = True
                stream, level = "system", "WARNING"
                text = (
                    f"log truncated: this attempt wrote more than {self.max_bytes} bytes; "
                    "later lines were dropped"
                )
            self.pending.append(
                {"ts": ts or time.time(), "stream": stream, "level": level, "text": text}
            )

    def take(self) -> tuple[int, list[dict]]:
        with self.lock:
            lines, self.pending = self.pending, []
            first = self.next_seq
            self.next_seq += len(lines)
            return first, lines

    def put_back(self, first: int, lines: list[dict]) -> None:
        """A batch the server did not take goes back in front, keeping its numbers."""
        with self.lock:
            self.pending = lines + self.pending
            self.next_seq = first


def _read_lines(pipe, on_line) -> None:
    for raw in iter(pipe.readline, b""):
        on_line(raw.decode("utf-8", "replace"))
    pipe.close()


class Attempt:
    def __init__(self, api: RunnerApi, spec: dict) -> None:
        self.api = api
        self.spec = spec
        self.logs = LogBuffer(
            list(spec.get("secrets", {}).values()), int(spec.get("max_log_bytes", 10_000_000))
        )
        self.result: dict | None = None
        self.samples: list[dict] = []
        self.peak_rss = 0
        self.cpu_seconds = 0.0
        self.cancelled = False
        self._last_sample: tuple[float, float] | None = None

    def _on_event(self, raw: str) -> None:
        try:
            event = json.loads(raw)
        except ValueError:
            return
        if event.get("kind") == "line":
            self.logs.add(str(event.get("stream")), str(event.get("text", "")), ts=event.get("ts"))
        elif event.get("kind") == "log":
            self.logs.add(
                "stdout",
                str(event.get("text", "")),
                level=str(event.get("level", "")),
                ts=event.get("ts"),
            )
        elif event.get("kind") == "result":
            self.result = event

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

    def _heartbeat(self, usage: Usage | None, final: bool = False) -> None:
        first, lines = self.logs.take()
        samples, self.samples = self.samples, []
        body = {"first_seq": first, "lines": lines, "samples": samples}
        try:
            answer = self.api.call("POST", "heartbeat", body, patience=120.0 if final else 5.0)
        except RunnerError:
            self.logs.put_back(first, lines)
            self.samples = samples + self.samples
            if final:
                raise
            return
        if answer.get("cancel"):
            self.cancelled = True

    def run(self) -> dict:
        spec = self.spec
        workdir = Path(tempfile.mkdtemp(prefix="chalk-run-"))
        source_path = workdir / spec["source_filename"]
        source_path.write_text(spec["source"])
        read_fd, write_fd = os.pipe()
        env = {**os.environ, **spec.get("env", {}), **spec.get("secrets", {})}
        env.pop("CHALK_ATTEMPT_TOKEN", None)  # the user's code never sees the runner's token
        env.update(
            {
                "CHALK_IN_RUN": "1",
                "CHALK_EVENTS_FD": str(write_fd),
                "CHALK_START_AT": str(spec.get("start_at") or 0),
                "PYTHONUNBUFFERED": "1",
            }
        )
        # The timeout counts from the start time: a runner prepared ahead of its slot waits.
        started = time.monotonic() + max(0.0, float(spec.get("start_at") or 0) - time.time())
        child = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "chalkcompute.runtime.child",
                str(source_path),
                spec["entrypoint"],
            ],
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            pass_fds=(write_fd,),
            env=env,
            cwd=workdir,
            start_new_session=True,
            preexec_fn=die_with_parent,
        )
        os.close(write_fd)
        readers = [
            threading.Thread(
                target=_read_lines,
                args=(child.stdout, lambda t: self.logs.add("stdout", t)),
                daemon=True,
            ),
            threading.Thread(
                target=_read_lines,
                args=(child.stderr, lambda t: self.logs.add("stderr", t)),
                daemon=True,
            ),
            threading.Thread(
                target=_read_lines, args=(os.fdopen(read_fd, "rb"), self._on_event), daemon=True
            ),
        ]
        for reader in readers:
            reader.start()

        timeout = spec.get("timeout")
        memory_limit = spec.get("memory_limit_bytes")
        stop_reason: tuple[str, str] | None = None  # (status, reason)
        term_sent_at = None
        next_heartbeat = time.monotonic()
        usage = None
        while child.poll() is None:
            now = time.monotonic()
            usage = session_usage(child.pid)
            self.peak_rss = max(self.peak_rss, usage.rss_bytes)
            self.cpu_seconds = max(self.cpu_seconds, usage.cpu_seconds)
            if stop_reason is None:
                if memory_limit and usage.rss_bytes > memory_limit:
                    stop_reason = (
                        "failed",
                        f"out of memory: used {_mib(usage.rss_bytes)}, above its memory limit "
                        f"{spec.get('memory')} ({_mib(memory_limit)})",
                    )
                    _signal_session(child.pid, signal.SIGKILL)
                elif timeout and now - started > timeout:
                    stop_reason = ("timed_out", f"timed out after {timeout:g} seconds")
                elif self.cancelled:
                    stop_reason = ("cancelled", "cancelled while running")
                if stop_reason and stop_reason[0] != "failed":
                    _signal_session(child.pid, signal.SIGTERM)
                    term_sent_at = now
            elif term_sent_at is not None and now - term_sent_at > KILL_GRACE_SECONDS:
                _signal_session(child.pid, signal.SIGKILL)
                term_sent_at = None
            if now >= next_heartbeat or len(self.logs.pending) >= FLUSH_LINES:
                if now >= next_heartbeat:
                    self._sample(usage)
                    next_heartbeat = now + HEARTBEAT_SECONDS
                self._heartbeat(usage)
            time.sleep(CHECK_SECONDS)
        _signal_session(child.pid, signal.SIGKILL)  # no grandchild outlives the attempt
        for reader in readers:
            reader.join(timeout=5)
        self._heartbeat(usage, final=True)
        return self._outcome(child.returncode, stop_reason)

    def _outcome(self, exit_code: int, stop_reason: tuple[str, str] | None) -> dict:
        outcome = {
            "exit_code": exit_code,
            "peak_memory_bytes": self.peak_rss,
            "cpu_seconds": round(self.cpu_seconds, 3),
            "log_truncated": self.logs.truncated,
            "error_type": "",
            "error_message": "",
            "traceback": "",
            "reason": "",
            "return_value": None,
        }
        result = self.result or {}
        if stop_reason:
            outcome["status"], outcome["reason"] = stop_reason
            if stop_reason[1].startswith("out of memory"):
                outcome["error_type"] = "OutOfMemory"
                outcome["error_message"] = stop_reason[1]
        elif result.get("ok") and exit_code == 0:
            outcome["status"] = "succeeded"
            outcome["return_value"] = result.get("return")
        else:
            outcome["status"] = "failed"
            if result and not result.get("ok"):
                for key in ("error_type", "error_message", "traceback"):
                    outcome[key] = self.logs.mask(result.get(key, ""))
            elif exit_code < 0:
                outcome["reason"] = (
                    f"the function's process was killed by signal {signal.Signals(-exit_code).name}"
                )
            else:
                outcome["reason"] = (
                    f"the function's process exited with code {exit_code} without a result"
                )
        return outcome


def _mib(size: int) -> str:
    return f"{size / 2**20:.1f} MiB"


def _signal_session(session_id: int, sig: int) -> None:
    try:
        os.killpg(session_id, sig)
    except (ProcessLookupError, PermissionError):
        pass


def _token() -> str:
    token_file = os.environ.get("CHALK_ATTEMPT_TOKEN_FILE")
    if token_file:
        return Path(token_file).read_text().strip()
    return os.environ["CHALK_ATTEMPT_TOKEN"]


def main() -> int:
    try:
        api = RunnerApi(os.environ["CHALK_SERVER_URL"], _token())
    except KeyError as exc:
        print(
            f"chalkcompute.runtime: {exc.args[0]} is not set; the runner is started by Chalkweb",
            file=sys.stderr,
        )
        return 2
    try:
        spec = api.call("GET", "attempt")
    except RunnerError as exc:
        print(f"chalkcompute.runtime: cannot fetch the attempt: {exc}", file=sys.stderr)
        return 3
    attempt = Attempt(api, spec)
    try:
        outcome = attempt.run()
    except Exception as exc:  # the runner's own failure still gets reported
        outcome = {
            "status": "failed",
            "reason": f"the runner failed: {type(exc).__name__}: {exc}",
            "exit_code": None,
        }
    try:
        api.call("POST", "finish", outcome, patience=300.0)
    except RunnerError as exc:
        print(f"chalkcompute.runtime: cannot report the outcome: {exc}", file=sys.stderr)
        return 4
    return 0
