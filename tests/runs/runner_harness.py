"""A real runner (`python -m chalkcompute.runtime`) and its child running a real function,
against a small runner API: a real HTTP server in a thread that answers the three endpoints
the runner calls (GET attempt, POST heartbeat, POST finish) the way Chalkweb's do, and keeps
what the runner posts. No database, no worker: a test sees exactly what the runner sends.

As Chalkweb's, it refuses a line of a stream other than stdout and stderr, and caps the log
at the spec's max_log_bytes: the line that passes the cap and all later ones are dropped, a
"log truncated" system line is stored and the heartbeat's answer says `log_truncated`."""

import contextlib
import json
import os
import subprocess
import sys
import textwrap
import threading
import time
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import psutil

from chalkcompute.runtime import protocol
from chalkcompute.runtime.protocol import AttemptDocument

REPO = Path(__file__).resolve().parents[2]
TOKEN = "attempt-token-for-tests"


@dataclass
class RunnerResult:
    returncode: int
    stderr: str
    lines: list[dict]  # as stored
    posted: list[dict]  # as the runner sent them, those the cap dropped too
    outcome: dict | None
    peak_rss: int  # of the runner process alone, sampled every 10 ms
    requests: list[tuple[str, str, dict]] = field(default_factory=list)

    @property
    def log(self) -> list[tuple[str, str, str]]:
        return [(line["stream"], line["level"], line["text"]) for line in self.lines]


class RunnerApiServer:
    """The runner API for one attempt whose spec is `spec`."""

    def __init__(self, spec: dict) -> None:
        self.spec = spec
        self.lines: list[dict] = []
        self.posted: list[dict] = []
        self.received = 0  # how many lines of the runner's are in (stored or dropped)
        self.log_bytes = 0
        self.truncated = False
        self.outcome: dict | None = None
        self.requests: list[tuple[str, str, dict]] = []
        self.lock = threading.Lock()
        server = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args) -> None:
                pass

            def _answer(self, status: int, body: dict) -> None:
                data = json.dumps(body).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def _handle(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                body = json.loads(self.rfile.read(length) or b"{}") if length else {}
                with server.lock:
                    server.requests.append((self.command, self.path, dict(self.headers)))
                if self.headers.get("Authorization") != f"Bearer {TOKEN}":
                    return self._answer(401, {"error": "unauthenticated", "detail": "no"})
                if length > protocol.MAX_REQUEST_BYTES:
                    return self._answer(400, {"error": "too_big", "detail": "body too big"})
                route = (self.command, self.path.removeprefix(protocol.API_PATH))
                if route == ("GET", protocol.ATTEMPT):
                    return self._answer(200, server.spec)
                if route == ("POST", protocol.HEARTBEAT):
                    with server.lock:
                        first, lines = int(body.get("first_seq", 0)), body.get("lines", [])
                        if any(line.get("stream") not in protocol.RUNNER_STREAMS for line in lines):
                            return self._answer(400, {"error": "invalid_line", "detail": ""})
                        if first > server.received:
                            return self._answer(409, {"error": "missing_lines", "detail": ""})
                        server.store(lines[server.received - first :])
                        answer = {"cancel": False}
                        if server.truncated:
                            answer["log_truncated"] = True
                    return self._answer(200, answer)
                if route == ("POST", protocol.FINISH):
                    server.outcome = body
                    return self._answer(200, {"ok": True})
                return self._answer(404, {"error": "not_found", "detail": self.path})

            do_GET = do_POST = _handle

        self.handler = Handler
        self.port = 0  # any free one at the first start; the same one after a stop()

    def start(self) -> None:
        self.httpd = ThreadingHTTPServer(("127.0.0.1", self.port), self.handler)
        self.port = self.httpd.server_address[1]
        # shutdown() waits for serve_forever's next poll: every 0.05 s, not the default 0.5 s.
        threading.Thread(target=self.httpd.serve_forever, args=(0.05,), daemon=True).start()

    def stop(self) -> None:
        """As a web that stops: from now on a connection is refused, until start()."""
        self.httpd.shutdown()
        self.httpd.server_close()

    def store(self, lines: list[dict]) -> None:
        self.received += len(lines)
        self.posted += lines
        for line in lines:
            if self.truncated:
                return
            size = protocol.stored_size(line["text"])
            if self.log_bytes + size > self.spec["max_log_bytes"]:
                self.truncated = True
                text = f"log truncated: more than {self.spec['max_log_bytes']} bytes"
                line = {"ts": time.time(), "stream": "system", "level": "WARNING", "text": text}
            self.log_bytes += size
            self.lines.append(line)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def __enter__(self) -> "RunnerApiServer":
        self.start()
        return self

    def __exit__(self, *exc) -> None:
        self.stop()


def attempt_spec(body: str, secrets: dict[str, str] | None = None, **overrides) -> dict:
    """The attempt JSON of a module whose function `job` has `body` as its code."""
    source = (
        "import json, os, sys, time\nfrom chalk import chalk_logger\n\n\ndef job():\n"
        + textwrap.indent(textwrap.dedent(body).strip() + "\n", "    ")
    )
    document = {
        "attempt_id": 1,
        "run": {
            "run_id": 1,
            "attempt": 1,
            "trigger": "manual",
            "slot": None,
            "previous_success_slot": None,
            "function": "job",
            "version": 1,
        },
        "entrypoint": "job",
        "source": source,
        "source_filename": "job.py",
        "secrets": secrets or {},
        "timeout": 120,
        **overrides,
    }
    return AttemptDocument(**document).as_json()


def run_runner(
    spec: dict,
    *,
    server: RunnerApiServer | None = None,
    server_url: str | None = None,
    timeout: float = 180,
) -> RunnerResult:
    """Runs the runner for `spec` to its end against a new RunnerApiServer, or `server`;
    `server_url` is the address the runner is given (by default the server's)."""
    with contextlib.ExitStack() as stack:
        if server is None:
            server = stack.enter_context(RunnerApiServer(spec))
        env = {
            "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
            "HOME": os.environ.get("HOME", "/tmp"),
            "LANG": "C.UTF-8",
            "PYTHONPATH": str(REPO),
            "CHALK_SERVER_URL": server_url or server.url,
            "CHALK_ATTEMPT_TOKEN": TOKEN,
        }
        runner = subprocess.Popen(
            [sys.executable, "-m", "chalkcompute.runtime"],
            env=env,
            cwd=REPO,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
        )
        peak = [0]
        watching = threading.Event()

        def watch() -> None:
            process = psutil.Process(runner.pid)
            while not watching.is_set():
                try:
                    peak[0] = max(peak[0], process.memory_info().rss)
                except psutil.Error:
                    return
                time.sleep(0.01)

        watcher = threading.Thread(target=watch, daemon=True)
        watcher.start()
        try:
            _, errors = runner.communicate(timeout=timeout)
        finally:
            runner.kill()
            watching.set()
            watcher.join()
        return RunnerResult(
            returncode=runner.returncode,
            stderr=errors.decode("utf-8", "replace"),
            lines=server.lines,
            posted=server.posted,
            outcome=server.outcome,
            peak_rss=peak[0],
            requests=server.requests,
        )
