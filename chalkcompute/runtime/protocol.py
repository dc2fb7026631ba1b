"""The runner protocol: what the runner (`python -m chalkcompute.runtime`, runner.py) and the
server's runner API (runs/runner_api.py and the log store it calls) agree on.

Every limit of the protocol is here, and only here: both sides import this module, so a
number changed here changes for both. The runner holds itself to these limits; the server
refuses (or cuts) what passes them, because the function a runner runs can read the runner's
token and call the runner API itself. The return value's formats and cap are in returns.py,
which both sides import too.

The conversation, over HTTP with the attempt's bearer token, under API_PATH:

1. GET ATTEMPT: the AttemptDocument (below), once; a second fetch is refused.
2. POST HEARTBEAT every HEARTBEAT_SECONDS: {"first_seq", "lines", "samples"}. A line is
   {"ts", "stream", "level", "text"}, numbered from first_seq; a sample is {"ts",
   "cpu_seconds", "cpu_percent", "rss_bytes"}. The answer: {"cancel"}, and "log_truncated"
   once the server drops the attempt's later lines.
3. POST FINISH: the outcome; the token is dead after it.

Standard library only, and Python 3.10's: the runner runs in every run image.
"""

import re
from dataclasses import asdict, dataclass, field, fields

# --- paths -----------------------------------------------------------------------------------

API_PATH = "/api/runner/v1/"  # under the server's own address
ATTEMPT = "attempt"
HEARTBEAT = "heartbeat"
FINISH = "finish"
# The runner's own code as a tar.gz, with no token: pods that install at start fetch it before
# they have a runner (runs/runtime_bundle.py).
RUNTIME_ARCHIVE = "runtime.tar.gz"

# --- timing ----------------------------------------------------------------------------------

HEARTBEAT_SECONDS = 1.0
# A runner prepared ahead of its slot beats this often while it waits: well inside the server's
# silence limit (CHALK_HEARTBEAT_TIMEOUT_SECONDS, 30 s by default).
WAITING_HEARTBEAT_SECONDS = 10.0
# How long the runner keeps asking for what must not be lost (its attempt, its last lines and
# its outcome) while the server does not answer: a web restarted or upgraded (migrations,
# `make install`) is back well within this. Heartbeats during the run are not bounded: their
# lines wait in the runner and go with the next heartbeat that gets through.
SERVER_PATIENCE_SECONDS = 600.0

# --- log lines -------------------------------------------------------------------------------

STDOUT, STDERR, SYSTEM = "stdout", "stderr", "system"
# The streams of a runner's lines. SYSTEM lines are the platform's own, never a runner's.
RUNNER_STREAMS = (STDOUT, STDERR)
# The levels a line may carry, lowest first, with logging's numbers; a print has none ("").
LEVEL_NUMBERS = {"DEBUG": 10, "INFO": 20, "WARNING": 30, "ERROR": 40, "CRITICAL": 50}
LEVELS = tuple(LEVEL_NUMBERS)

# --- limits ----------------------------------------------------------------------------------

# The most the server reads of one request body: Django's DATA_UPLOAD_MAX_MEMORY_SIZE, which
# chalkweb/settings.py sets from here (2.5 MB); a larger body is answered 413.
MAX_REQUEST_BYTES = 2_621_440
# The most lines, and the most usage samples, one heartbeat carries; the server refuses more,
# which keeps the work of one request small whatever is sent.
MAX_HEARTBEAT_ITEMS = 5_000
# The runner sends a heartbeat early once this many lines, or this much of them as JSON, wait:
# well inside MAX_HEARTBEAT_ITEMS and MAX_REQUEST_BYTES.
FLUSH_LINES = 500
MAX_BATCH_BYTES = 2**20
# The runner cuts a longer line into lines of this many characters ...
MAX_LINE_CHARS = 16_384
# ... which always fit the server's cap on one line (4 bytes a character at most); the server
# cuts a longer line with a marker.
MAX_LINE_BYTES = 65_536
# An attempt's log: the runner's lines together, counted by stored_size. The line that passes
# the cap and every later one are dropped, and the server writes one "log truncated" line. The
# server's CHALK_MAX_LOG_BYTES, by default this; the runner gets it as max_log_bytes.
DEFAULT_MAX_LOG_BYTES = 10_000_000

assert MAX_LINE_CHARS * 4 <= MAX_LINE_BYTES
assert FLUSH_LINES <= MAX_HEARTBEAT_ITEMS and MAX_BATCH_BYTES < MAX_REQUEST_BYTES / 2

# What neither database stores in text: NUL (PostgreSQL refuses it), unpaired surrogates
# (which do not encode as UTF-8).
_UNSTORABLE = re.compile("[\x00\ud800-\udfff]")


def storable_text(text: str) -> str:
    """`text` as the server stores it: NUL and unpaired surrogates as U+FFFD."""
    return _UNSTORABLE.sub("\ufffd", text)


def stored_size(text: str) -> int:
    """The bytes of `text` as the server stores it (UTF-8 of storable_text): what counts
    against a line's and an attempt's caps, on both sides."""
    return len(storable_text(text).encode())


# --- the attempt document --------------------------------------------------------------------


@dataclass(frozen=True, kw_only=True)
class AttemptDocument:
    """What GET ATTEMPT answers: everything the runner needs to run one attempt. The server
    builds it (runs/runner_api.py), the runner reads it (runner.py)."""

    attempt_id: int
    # What current_run() returns in the run (chalkcompute/run_context.py).
    run: dict
    entrypoint: str  # the function's name in its module
    source: str  # the module's code
    source_filename: str
    # By the environment variable the run gets each as; the runner masks every value.
    secrets: dict = field(default_factory=dict)
    env: dict = field(default_factory=dict)  # the image's and the function's, not secret
    # The files shipped with the code (Image.add_local_*): {"path", "content_base64"} each.
    files: list = field(default_factory=list)
    start_at: float = 0.0  # seconds since the epoch: a runner prepared ahead waits for it
    timeout: float | None = None  # seconds, counted from start_at
    timeout_is_default: bool = False  # the function set none: the reason says how to
    memory: str | None = None  # the function's request, as it wrote it
    memory_limit_bytes: int | None = None  # the runner kills the run past it
    max_processes: int | None = None  # the runner kills a sandboxed run past it
    max_log_bytes: int = DEFAULT_MAX_LOG_BYTES

    def as_json(self) -> dict:
        return asdict(self)

    @classmethod
    def from_json(cls, document: dict) -> "AttemptDocument":
        """The document as the server sent it; keys this runner does not know are left out."""
        known = {each.name for each in fields(cls)}
        return cls(**{key: value for key, value in document.items() if key in known})
