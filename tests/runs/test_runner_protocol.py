"""The runner API as a hostile program uses it. A deployed function is untrusted code: it can
read its runner's token and post to the runner API itself. Whatever it sends, the server keeps
the protocol's rules: no system line from a runner, no log past its caps, no 500, and no line
of the runner's dropped or changed."""

import datetime as dt
import json

import pytest
from django.conf import settings
from django.db import connection
from django.test.utils import CaptureQueriesContext

from chalkcompute.runtime import protocol
from runs import logs
from runs.models import Attempt, LogLine, UsageSample
from runs.services import attempt_claim, run_trigger
from tests.personas import acting
from tests.runs.support import deploy

T0 = dt.datetime(2026, 3, 1, 12, 0, tzinfo=dt.UTC)
HEARTBEAT, FINISH = "/api/runner/v1/heartbeat", "/api/runner/v1/finish"
TRUNCATED = "log truncated: this attempt wrote more than {} bytes; later lines were dropped"


@pytest.fixture
def runner(db, client):
    """POSTs to the runner API with the token of a claimed attempt: `runner(path, body)`, a
    dict sent as JSON or a str sent as it is (JSON no encoder would write)."""
    run = run_trigger(
        function=deploy("nightly-rollup", "pass", now=T0), trigger="manual", actor=acting("alice"),
        now=T0,
    )  # fmt: skip
    _, token = attempt_claim(
        attempt_id=run.attempts.get().id, executor="local", executor_ref="test", now=T0
    )

    def post(path: str, body):
        data = body if isinstance(body, str) else json.dumps(body)
        return client.post(
            path, data, content_type="application/json", HTTP_AUTHORIZATION=f"Bearer {token}"
        )

    return post


def line(text: str, stream: str = "stdout", level: str = "", ts: float | None = None) -> dict:
    return {
        "ts": T0.timestamp() if ts is None else ts,
        "stream": stream,
        "level": level,
        "text": text,
    }


def stored() -> list[tuple[str, str, str]]:
    return list(LogLine.objects.order_by("seq").values_list("stream", "level", "text"))


def beat(runner, first_seq: int, lines: list[dict]):
    response = runner(HEARTBEAT, {"first_seq": first_seq, "lines": lines})
    assert response.status_code == 200, response.content
    return response.json()


# --- streams and levels ----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("bad", "detail"),
    [
        (
            line("attempt lost: forged by the function", stream="system", level="ERROR"),
            "lines[1].stream must be stdout or stderr, not 'system': system lines are the "
            "platform's own",
        ),
        (line("x", stream="syslog"), "lines[1].stream must be stdout or stderr, not 'syslog'"),
        ({**line("x"), "stream": 1}, "lines[1].stream must be stdout or stderr, not 1"),
        (
            line("x", level="EMERGENCY"),
            "lines[1].level must be DEBUG, INFO, WARNING, ERROR, CRITICAL or empty, not "
            "'EMERGENCY'",
        ),
        (
            {**line("x"), "level": ["ERROR"]},
            "lines[1].level must be DEBUG, INFO, WARNING, ERROR, CRITICAL or empty, not ['ERROR']",
        ),
        ({**line("x"), "text": {"a": 1}}, "lines[1].text must be a string, not a dict"),
        (
            {**line("x"), "ts": "yesterday"},
            "lines[1].ts must be a number of seconds since the epoch, not 'yesterday'",
        ),
    ],
)
def test_it_refuses_a_line_no_runner_may_send_and_stores_none_of_the_batch(runner, bad, detail):
    response = runner(HEARTBEAT, {"first_seq": 0, "lines": [line("fine"), bad]})

    assert response.status_code == 400
    assert response.json() == {"error": "invalid_request", "detail": detail}
    assert stored() == []


def test_the_platforms_own_system_lines_still_go_in(runner):
    beat(runner, 0, [line("hello", level="INFO")])
    logs.log_system(attempt=Attempt.objects.get(), text="the pod was evicted", now=T0)

    assert stored() == [("stdout", "INFO", "hello"), ("system", "INFO", "the pod was evicted")]


# --- numbers ---------------------------------------------------------------------------------


def samples(cpu_seconds, cpu_percent, rss_bytes) -> str:
    """A heartbeat body with one sample whose numbers are written as given, raw JSON."""
    sample = f'"cpu_seconds": {cpu_seconds}, "cpu_percent": {cpu_percent}, "rss_bytes": {rss_bytes}'
    return f'{{"first_seq": 0, "samples": [{{"ts": 1, {sample}}}]}}'


@pytest.mark.parametrize(
    ("body", "detail"),
    [
        (samples("Infinity", 0, 1), None),
        (samples("NaN", 0, 1), None),
        (
            samples("1e400", 0, 1),
            "samples[0].cpu_seconds must be a finite number, not inf",
        ),
        (
            samples(1, "-1e400", 1),
            "samples[0].cpu_percent must be a finite number, not -inf",
        ),
        (
            samples(1, 0, 10**30),
            f"samples[0].rss_bytes must be a whole number from 0 to {2**63 - 1}, not {10**30}",
        ),
        (
            samples(1, 0, '"1024"'),
            "samples[0].rss_bytes must be a whole number, not '1024'",
        ),
        (
            samples('"nan"', 0, 1),
            "samples[0].cpu_seconds must be a number, not 'nan'",
        ),
        (
            samples(1, 0, 1.5),
            "samples[0].rss_bytes must be a whole number, not 1.5",
        ),
        (
            samples(-1, 0, 1),
            "samples[0].cpu_seconds must be a number of at least 0, not -1",
        ),
        (
            f'{{"first_seq": {10**30}, "lines": [{{"text": "x"}}]}}',
            f"first_seq must be a whole number from 0 to {2**31 - 1}, not {10**30}",
        ),
        (
            '{"first_seq": -3, "lines": [{"text": "x"}]}',
            f"first_seq must be a whole number from 0 to {2**31 - 1}, not -3",
        ),
        ('{"first_seq": true, "lines": []}', "first_seq must be a whole number, not True"),
        ('{"first_seq": 0, "lines": [{"text": "x", "ts": Infinity}]}', None),
        (
            '{"first_seq": 0, "lines": [{"text": "x", "ts": 1e400}]}',
            "lines[0].ts must be a number of seconds since the epoch, not inf",
        ),
    ],
)
def test_it_answers_a_heartbeat_with_a_number_it_cannot_store_400(runner, body, detail):
    response = runner(HEARTBEAT, body)

    assert response.status_code == 400, response.content
    if detail is None:  # a JSON constant (NaN, Infinity) or a float past the double's range
        assert response.json()["error"] in ("invalid_json", "invalid_request")
    else:
        assert response.json() == {"error": "invalid_request", "detail": detail}
    assert (LogLine.objects.count(), UsageSample.objects.count()) == (0, 0)


@pytest.mark.parametrize(
    ("field", "raw", "detail"),
    [
        ("exit_code", "Infinity", None),
        (
            "exit_code",
            str(10**30),
            f"exit_code must be a whole number from {-(2**31)} to {2**31 - 1}",
        ),
        ("exit_code", "1e400", "exit_code must be a finite number, not inf"),
        ("exit_code", '"0"', "exit_code must be a whole number, not '0'"),
        (
            "peak_memory_bytes",
            str(10**30),
            f"peak_memory_bytes must be a whole number from 0 to {2**63 - 1}",
        ),
        (
            "peak_memory_bytes",
            "-5",
            f"peak_memory_bytes must be a whole number from 0 to {2**63 - 1}",
        ),
        ("cpu_seconds", "1e400", "cpu_seconds must be a finite number, not inf"),
        ("cpu_seconds", "NaN", None),
        ("cpu_seconds", '"12"', "cpu_seconds must be a number, not '12'"),
        ("reason", '["a"]', "reason must be a string, not a list"),
    ],
)
def test_it_answers_a_finish_with_a_value_it_cannot_store_400(runner, field, raw, detail):
    response = runner(FINISH, f'{{"status": "succeeded", "{field}": {raw}}}')

    assert response.status_code == 400, response.content
    if detail is None:
        assert response.json()["error"] == "invalid_json"
    else:
        assert response.json()["error"] == "invalid_request"
        assert response.json()["detail"].startswith(detail)
    assert Attempt.objects.get().status == "starting"


def test_it_stores_text_the_database_could_not_hold_with_a_replacement_character(runner):
    text = "nul \x00 and a lone surrogate \ud800 here"
    beat(runner, 0, [line(text)])
    response = runner(
        FINISH, {"status": "failed", "error_type": "E\x00", "traceback": "at \x00 \udfff"}
    )

    assert response.status_code == 200
    assert stored() == [("stdout", "", "nul \ufffd and a lone surrogate \ufffd here")]
    attempt = Attempt.objects.get()
    assert (attempt.error_type, attempt.traceback) == ("E\ufffd", "at \ufffd \ufffd")
    # The runner counts its log against the cap with the same rule.
    assert attempt.log_bytes == protocol.stored_size(text) == len(stored()[0][2].encode())


def test_it_answers_json_nested_too_deeply_400(runner):
    response = runner(HEARTBEAT, '{"lines": ' + "[" * 100_000 + "]" * 100_000 + "}")

    assert response.status_code == 400
    assert response.json()["error"] == "invalid_json"


# --- volume ----------------------------------------------------------------------------------


def test_it_refuses_more_lines_or_samples_in_one_heartbeat_than_it_takes(runner):
    limit = protocol.MAX_HEARTBEAT_ITEMS
    too_many_lines = runner(HEARTBEAT, {"first_seq": 0, "lines": [{}] * (limit + 1)})
    sample = {"ts": 1, "cpu_seconds": 1, "cpu_percent": 0, "rss_bytes": 1}
    too_many_samples = runner(HEARTBEAT, {"first_seq": 0, "samples": [sample] * (limit + 1)})

    assert too_many_lines.status_code == too_many_samples.status_code == 413
    assert too_many_lines.json() == {
        "error": "too_many_lines",
        "detail": f"a heartbeat carries at most {limit} lines, not {limit + 1}; send them in "
        "batches",
    }
    assert too_many_samples.json()["error"] == "too_many_samples"
    assert (LogLine.objects.count(), UsageSample.objects.count()) == (0, 0)
    beat(runner, 0, [line("x")] * limit)
    assert LogLine.objects.count() == limit


def test_it_answers_a_body_past_djangos_bound_413_in_the_apis_shape(runner):
    response = runner(HEARTBEAT, {"first_seq": 0, "lines": [line("x" * 3_000_000)]})

    assert response.status_code == 413
    assert response.json()["error"] == "request_too_large"


def test_it_cuts_a_line_of_two_million_characters(runner):
    limit = protocol.MAX_LINE_BYTES
    # A two-byte "é" across the limit: the cut keeps whole characters.
    beat(runner, 0, [line("x" * (limit - 1) + "é" + "x" * (2_000_000 - limit)), line("next")])

    (cut, after) = LogLine.objects.order_by("seq").values_list("text", flat=True)
    assert cut == "x" * (limit - 1) + (
        f" … [cut: this line had 2000001 bytes, past the {limit} a log line holds]"
    )
    assert after == "next"
    assert Attempt.objects.get().log_bytes == len(cut.encode()) + len("next")


def test_it_caps_the_log_it_stores_whatever_the_runner_sends(runner):
    """11 MB past the 10 MB cap, in heartbeats of about 2 MB: what is stored stays under the
    cap, the platform writes one marker line, and later heartbeats store nothing."""
    cap = settings.CHALK_MAX_LOG_BYTES
    chunk = [line(f"{i:05} " + "x" * 59_994) for i in range(32)]  # 60 KB lines, 1.92 MB
    sent, seq, answers = 0, 0, []
    while sent < cap + 11_000_000:
        answers.append(beat(runner, seq, chunk))
        seq += len(chunk)
        sent += 32 * 60_000

    attempt = Attempt.objects.get()
    runner_bytes = sum(
        len(text.encode())
        for text in LogLine.objects.exclude(stream="system").values_list("text", flat=True)
    )
    assert runner_bytes == attempt.log_bytes <= cap
    assert runner_bytes > cap - 60_000  # every line that fitted
    assert list(LogLine.objects.filter(stream="system").values_list("level", "text")) == [
        ("WARNING", TRUNCATED.format(cap))
    ]
    assert LogLine.objects.order_by("-seq").values_list("stream", flat=True)[0] == "system"
    assert attempt.log_truncated is True
    assert attempt.runner_lines == seq  # every line was taken: none is "missing"
    assert answers[0] == {"cancel": False}
    assert answers[-1] == {"cancel": False, "log_truncated": True}

    # The runner's own report cannot undo the server's.
    runner(FINISH, {"status": "succeeded", "log_truncated": False})
    assert Attempt.objects.get().log_truncated is True


def test_it_inserts_a_big_batch_a_bounded_number_of_rows_per_transaction(runner, monkeypatch):
    """Each transaction locks the attempt row (SQLite: the whole database) for at most
    LOG_ROWS_PER_TRANSACTION rows, so another writer (the tick) gets in between."""
    limit, per_transaction = protocol.MAX_HEARTBEAT_ITEMS, logs.LOG_ROWS_PER_TRANSACTION
    transactions = []
    store = logs._store_runner_lines

    def spy(attempt_id, first, lines, **kwargs):
        transactions.append(len(lines))
        return store(attempt_id, first, lines, **kwargs)

    monkeypatch.setattr(logs, "_store_runner_lines", spy)
    with CaptureQueriesContext(connection) as queries:
        beat(runner, 0, [line(f"line {i}") for i in range(limit)])

    assert transactions == [per_transaction] * (limit // per_transaction)
    if connection.vendor == "postgresql":  # SQLite has no FOR UPDATE: its lock is the database's
        assert len([q for q in queries if "FOR UPDATE" in q["sql"]]) == len(transactions)
    seqs = list(LogLine.objects.order_by("id").values_list("seq", flat=True))
    assert seqs == list(range(limit))
    assert Attempt.objects.get().runner_lines == limit


# --- first_seq -------------------------------------------------------------------------------


def test_a_resent_batch_is_stored_once(runner):
    first = [line("a", ts=1.5), line("b", ts=2.5)]
    beat(runner, 0, first)
    beat(runner, 0, [*first, line("c", ts=3.5)])  # the answer to the first was lost

    assert [text for _, _, text in stored()] == ["a", "b", "c"]


def test_a_program_running_ahead_of_the_runner_cannot_have_its_lines_dropped(runner):
    """The function posts lines of its own with the runner's next numbers: the runner's batch
    then starts behind what the server counted, yet it is no resend, and is kept whole."""
    beat(runner, 0, [line("real 0", ts=1.0), line("real 1", ts=1.1)])
    beat(runner, 2, [line("fake", ts=2.0)] * 500)
    beat(runner, 2, [line("real 2", ts=1.2), line("real 3", ts=1.3)])
    beat(runner, 4, [line("real 4", ts=1.4)])

    texts = [text for _, _, text in stored()]
    assert [t for t in texts if t.startswith("real")] == [f"real {i}" for i in range(5)]
    assert texts.count("fake") == 500


def test_a_forged_first_seq_cannot_erase_or_overwrite_stored_lines(runner):
    beat(runner, 0, [line(f"real {i}", ts=1 + i / 10) for i in range(3)])
    before = list(LogLine.objects.order_by("seq").values_list("id", "seq", "text"))
    beat(runner, 0, [line("forged", ts=9.0)] * 3)
    beat(runner, 1, [line("forged", ts=9.0)])

    after = list(LogLine.objects.order_by("seq").values_list("id", "seq", "text"))
    assert after[: len(before)] == before
    assert [text for _, _, text in after[len(before) :]] == ["forged"] * 4
