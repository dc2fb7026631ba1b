"""The log and usage store: an attempt's log lines (log_append from its runner, log_system and
the platform's own lines) and its CPU and memory samples (usage_append), checked as if a
stranger sent them and written in short transactions. The state machine (runs/services.py)
writes its system lines here; nothing here changes a run's or an attempt's status."""

import contextlib
import datetime as dt
import math
import threading
import time
from dataclasses import dataclass

from django.conf import settings
from django.db import connection, transaction

from chalkcompute.runtime import protocol
from runs.errors import InvalidLogLineError, MissingLogLinesError
from runs.models import Attempt, LogLine, LogStream, UsageSample

# The runner is not trusted: a deployed function can read its runner's token and post to the
# runner API itself. So what reaches an attempt's log is decided here, whatever the runner
# sends:
# - a runner's line is stdout or stderr, with a standard level or none; `system` lines are the
#   platform's own (written with first_seq None), never a runner's;
# - a line holds at most protocol.MAX_LINE_BYTES of UTF-8 (the runner cuts at MAX_LINE_CHARS
#   characters, which always fit), the rest is cut with a marker;
# - an attempt's runner lines hold at most CHALK_MAX_LOG_BYTES together (`log_bytes` counts
#   them): the line that would pass the cap and all later ones are dropped, and the platform
#   writes one marker line and sets `log_truncated`;
# - lines go in at most LOG_ROWS_PER_TRANSACTION per transaction, each under the attempt's row
#   lock, so one heartbeat never holds the database (on SQLite: all of it) for long, and other
#   writers (the tick) get in between its transactions.
#
# What a hostile function holding its runner's token can still do: post lines of its own as
# stdout or stderr, with any standard level and timestamp, up to the caps; so fill its log up to
# the cap and have the rest of its output dropped; and, by taking the runner's next sequence
# numbers first, have the runner's following batches stored after its own, out of order with
# its lines, and a batch the runner resends after a lost answer stored twice (see
# _already_stored). What it cannot do: write a system line, pass a cap, change or delete a
# line already stored, or have a line of the runner's dropped as if it were resent (a batch is
# a resend only where it repeats exactly the lines stored under those numbers).

LOG_ROWS_PER_TRANSACTION = 1_000


def storable_json(value: object) -> object:
    """A JSON value with storable_text applied to every string, keys too: PostgreSQL's jsonb
    refuses them as text columns do."""
    if isinstance(value, str):
        return protocol.storable_text(value)
    if isinstance(value, list):
        return [storable_json(item) for item in value]
    if isinstance(value, dict):
        return {protocol.storable_text(key): storable_json(item) for key, item in value.items()}
    return value


@dataclass(frozen=True, slots=True)
class _Line:
    ts: dt.datetime
    stream: str
    level: str
    text: str
    size: int  # of `text` in UTF-8: what counts against CHALK_MAX_LOG_BYTES
    db_ts: object  # `ts` as the database driver takes it

    def key(self) -> tuple:
        return (self.ts, self.stream, self.level, self.text)


def _line(ts: dt.datetime, stream: str, level: str, text: str) -> _Line:
    encoded = protocol.storable_text(text).encode()
    if len(encoded) > protocol.MAX_LINE_BYTES:
        kept = encoded[: protocol.MAX_LINE_BYTES].decode("utf-8", "ignore")  # whole characters
        encoded = (
            f"{kept} … [cut: this line had {len(encoded)} bytes, past the "
            f"{protocol.MAX_LINE_BYTES} a log line holds]"
        ).encode()
    db_ts = connection.ops.adapt_datetimefield_value(ts)
    return _Line(ts, stream, level, encoded.decode(), len(encoded), db_ts)


_INSERT_LINES = f"INSERT INTO {LogLine._meta.db_table} (attempt_id, seq, ts, stream, level, text) "
_INSERT_LINES_POSTGRESQL = _INSERT_LINES + (
    "SELECT %s, seq, ts, stream, level, text FROM unnest(%s::int[], %s::timestamptz[], "
    "%s::text[], %s::text[], %s::text[]) AS t(seq, ts, stream, level, text)"
)


_COLUMNS = ("db_ts", "stream", "level", "text")  # of _Line, in _INSERT_LINES_POSTGRESQL's order


def _insert_lines(attempt_id: int, stored: int, lines: list[_Line]) -> None:
    """Inserts `lines` numbered from `stored`, their values adapted before the caller took the
    lock: bulk_create's work per object was nine tenths of the time the lock was held. One
    statement on PostgreSQL; executemany on SQLite, where it costs no round trips."""
    if not lines:
        return
    with connection.cursor() as cursor:
        if connection.vendor == "postgresql":
            cursor.execute(
                _INSERT_LINES_POSTGRESQL,
                [
                    attempt_id,
                    list(range(stored, stored + len(lines))),
                    *([getattr(line, name) for line in lines] for name in _COLUMNS),
                ],
            )
        else:
            cursor.executemany(
                _INSERT_LINES + "VALUES (%s, %s, %s, %s, %s, %s)",
                [
                    (attempt_id, stored + n, line.db_ts, line.stream, line.level, line.text)
                    for n, line in enumerate(lines)
                ],
            )


def _runner_line(line: dict, n: int, now: dt.datetime) -> _Line:
    stream = line.get("stream", LogStream.STDOUT)
    if stream not in protocol.RUNNER_STREAMS:
        why = ": system lines are the platform's own" if stream == LogStream.SYSTEM else ""
        raise InvalidLogLineError(
            f"lines[{n}].stream must be stdout or stderr, not {stream!r:.100}{why}"
        )
    level = line.get("level") or ""
    if level and level not in protocol.LEVELS:
        raise InvalidLogLineError(
            f"lines[{n}].level must be {', '.join(protocol.LEVELS)} or empty, not {level!r:.100}"
        )
    text = line.get("text", "")
    if not isinstance(text, str):
        raise InvalidLogLineError(f"lines[{n}].text must be a string, not a {type(text).__name__}")
    ts = line.get("ts")
    if ts is not None and (
        isinstance(ts, bool) or not isinstance(ts, (int, float)) or not math.isfinite(ts)
    ):
        raise InvalidLogLineError(
            f"lines[{n}].ts must be a number of seconds since the epoch, not {ts!r:.100}"
        )
    return _line(_timestamp(ts, now), str(stream), level, text)


def _platform_line(line: dict, now: dt.datetime) -> _Line:
    return _line(
        _timestamp(line.get("ts"), now),
        line.get("stream", LogStream.STDOUT),
        str(line.get("level", ""))[:8],
        str(line.get("text", "")),
    )


def log_append(
    *, attempt: Attempt, first_seq: int | None, lines: list[dict], now: dt.datetime
) -> bool:
    """Stores log lines in order; returns whether the attempt's log is truncated (the runner's
    later lines are dropped).

    `first_seq` None: the platform's own lines (system lines, a pod's log), which no cap drops.
    Otherwise the runner's batch, `first_seq` its number of the batch's first line, checked as
    if a hostile program sent it (see above): a line no runner may send refuses the whole
    batch (InvalidLogLineError) before anything is stored. A batch sent again after a lost
    answer overlaps what was stored, and only its new tail is kept; the runner's lines are
    counted apart from the platform's own, which may come in between.
    """
    if first_seq is None:
        prepared = [_platform_line(line, now) for line in lines]
    else:
        if first_seq < 0:
            raise InvalidLogLineError(f"first_seq must be at least 0, not {first_seq}")
        prepared = [_runner_line(line, n, now) for n, line in enumerate(lines)]
    truncated = False
    for start in range(0, len(prepared), LOG_ROWS_PER_TRANSACTION):
        chunk = prepared[start : start + LOG_ROWS_PER_TRANSACTION]
        if first_seq is None:
            _store_platform_lines(attempt.id, chunk)
        else:
            truncated = _store_runner_lines(
                attempt.id, first_seq + start, chunk, batch_rest=len(prepared) - start, now=now
            )
    return truncated


_SQLITE_LOG_WRITES = threading.Lock()


@contextlib.contextmanager
def _log_transaction():
    """A transaction of log_append. On SQLite, one at a time in this process, and after each
    the database is left free for as long as the transaction held it.

    SQLite has one write lock for the whole database, and a writer waiting for it polls (its
    busy handler sleeps 1, 2, 5, … up to 100 ms between tries): transactions back to back,
    from one batch or from heartbeats sent at once, would leave it no moment to get in and a
    tick would wait for the whole flood. So log writes take at most half of the database's
    time, and another writer waits for about one transaction. PostgreSQL locks rows: nothing
    to wait for. Inside a caller's transaction the pause would only hold its lock longer."""
    if connection.vendor != "sqlite" or connection.in_atomic_block:
        with transaction.atomic():
            yield
        return
    with _SQLITE_LOG_WRITES:
        with transaction.atomic():
            began = time.monotonic()  # BEGIN IMMEDIATE returned: the lock is held from here
            yield
        time.sleep(time.monotonic() - began)


def _store_platform_lines(attempt_id: int, lines: list[_Line]) -> None:
    with _log_transaction():
        # Locks the attempt so concurrent writers (runner, reaper, executor) number lines
        # one after another and ids follow the order of the log.
        stored = (
            Attempt.objects.select_for_update()
            .values_list("log_lines", flat=True)
            .get(id=attempt_id)
        )
        _insert_lines(attempt_id, stored, lines)
        Attempt.objects.filter(id=attempt_id).update(log_lines=stored + len(lines))


def _store_runner_lines(
    attempt_id: int, first: int, lines: list[_Line], *, batch_rest: int, now: dt.datetime
) -> bool:
    """One transaction of a runner's batch: `lines` are the runner's lines `first`…, and
    `batch_rest` lines of its batch start at `first`. Returns whether the log is truncated."""
    with _log_transaction():
        stored, from_runner, log_bytes, truncated = (
            Attempt.objects.select_for_update()
            .values_list("log_lines", "runner_lines", "log_bytes", "log_truncated")
            .get(id=attempt_id)
        )
        behind = from_runner - first
        if behind < 0:  # only a batch's first transaction can be ahead: later ones follow it
            raise MissingLogLinesError(
                f"log lines {from_runner}..{first - 1} are missing; resend from {from_runner}"
            )
        new = lines
        if (
            behind
            and not truncated
            and _already_stored(attempt_id, lines, behind=behind, batch_rest=batch_rest)
        ):
            new = lines[behind:]
        rows = []
        for line in () if truncated else new:
            if log_bytes + line.size > settings.CHALK_MAX_LOG_BYTES:
                truncated = True
                rows.append(_line(now, LogStream.SYSTEM, "WARNING", _truncated_words()))
                break
            log_bytes += line.size
            rows.append(line)
        _insert_lines(attempt_id, stored, rows)
        Attempt.objects.filter(id=attempt_id).update(
            log_lines=stored + len(rows),
            # Dropped lines count too: the runner's next batch is not "missing" them.
            runner_lines=max(from_runner, first + len(lines)),
            log_bytes=log_bytes,
            log_truncated=truncated,
        )
    return truncated


def _truncated_words() -> str:
    return (
        f"log truncated: this attempt wrote more than {settings.CHALK_MAX_LOG_BYTES} bytes; "
        "later lines were dropped"
    )


def _already_stored(attempt_id: int, lines: list[_Line], *, behind: int, batch_rest: int) -> bool:
    """Whether the first of `lines`, which start `behind` lines before the runner's last one
    stored, are the lines stored under their numbers: a batch sent again after a lost answer.

    The runner sends one batch at a time and resends it whole, so a resend is never more than
    its own batch behind. Anything else that starts behind (another program posting with the
    attempt's token took those numbers first) is stored, never dropped: at worst twice."""
    if behind > batch_rest:
        return False
    overlap = min(behind, len(lines))
    # The runner's lines, newest first (the platform's are system lines, or come once the
    # attempt has ended); through the (attempt, seq) index, reading `behind` rows at most.
    newest_first = (
        LogLine.objects.filter(attempt_id=attempt_id)
        .exclude(stream=LogStream.SYSTEM)
        .order_by("-seq")
        .values_list("ts", "stream", "level", "text")[behind - overlap : behind]
    )
    return list(reversed(newest_first)) == [line.key() for line in lines[:overlap]]


def log_system(*, attempt: Attempt, text: str, now: dt.datetime, level: str = "INFO") -> None:
    log_append(
        attempt=attempt,
        first_seq=None,
        lines=[{"ts": now.timestamp(), "stream": "system", "level": level, "text": text}],
        now=now,
    )


def usage_append(*, attempt: Attempt, samples: list[dict], now: dt.datetime) -> None:
    rows = [
        UsageSample(
            attempt_id=attempt.id,
            ts=_timestamp(sample.get("ts"), now),
            cpu_seconds=float(sample["cpu_seconds"]),
            cpu_percent=float(sample.get("cpu_percent", 0.0)),  # % of one core since the last
            rss_bytes=int(sample["rss_bytes"]),
        )
        for sample in samples
    ]
    for start in range(0, len(rows), LOG_ROWS_PER_TRANSACTION):  # each its own transaction
        UsageSample.objects.bulk_create(rows[start : start + LOG_ROWS_PER_TRANSACTION])
    update = {"last_heartbeat_at": now}
    if rows:
        update["cpu_seconds"] = max(r.cpu_seconds for r in rows)
    Attempt.objects.filter(id=attempt.id).update(**update)
    if rows:
        peak = max(r.rss_bytes for r in rows)
        Attempt.objects.filter(id=attempt.id).exclude(peak_memory_bytes__gte=peak).update(
            peak_memory_bytes=peak
        )


def _timestamp(value: object, default: dt.datetime) -> dt.datetime:
    try:
        return dt.datetime.fromtimestamp(float(value), tz=dt.UTC)
    except (TypeError, ValueError, OverflowError, OSError):
        return default
