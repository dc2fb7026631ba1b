"""Secrets are masked in every form a program commonly prints them, on every path out of a run.

The table runs a real runner and its child on a real function (runner_harness: the runner API
is a small HTTP server that keeps what the runner posts); the Masker's own rules come after.
"""

import json
import random

import pytest

from chalkcompute.runtime.child import MAX_ERROR_MESSAGE, MAX_TRACEBACK
from chalkcompute.runtime.masking import MASK, Masker, secret_forms
from chalkcompute.runtime.protocol import MAX_LINE_CHARS
from chalkcompute.runtime.returns import MAX_RETURN_BYTES
from tests.runs.runner_harness import attempt_spec, run_runner

KEY = "sk-live-9f8e7d6c5b4a"
PEM = (
    "-----BEGIN PRIVATE KEY-----\n"
    "MIIEvQIBADANBgkqhkiG9w0BAQEFAASC\n"
    "BKcwggSjAgEAAoIBAQC7\n"
    "-----END PRIVATE KEY-----\n"
)
TOKEN = "tok-4c1d2e3f\n"  # pasted with its newline
QUOTED = 'o\'k "pass"\\word é'  # both quotes, a backslash and a non-ASCII letter
UMLAUT = "pässwörd"
SECRETS = {"API_KEY": KEY, "PEM_KEY": PEM, "TOKEN": TOKEN, "QUOTED": QUOTED, "UMLAUT": UMLAUT}
PRELUDE = """
import subprocess
k, pem, token, q, u = (os.environ[n] for n in ("API_KEY", "PEM_KEY", "TOKEN", "QUOTED", "UMLAUT"))
"""


def out(*texts: str, stream: str = "stdout", level: str = "") -> list[tuple[str, str, str]]:
    return [(stream, level, text) for text in texts]


# id, the function's body, what the run reports: "log" (stream, level, text) exactly, or
# "error_message", "return_value" exactly, or "traceback" / "record" holding a text, or "cut":
# (field, start, end) of a text cut to its limit; and in every row, no form of any secret
# anywhere, nor any text of "absent" (a part of one: what the cut could leave).
ROWS = [
    ("stdout", 'print("key is", k)', {"log": out("key is ********")}),
    (
        "stderr",
        'print("key is", k, file=sys.stderr)',
        {"log": out("key is ********", stream="stderr")},
    ),
    ("os-write-fd-1", 'os.write(1, f"key is {k}\\n".encode())', {"log": out("key is ********")}),
    (
        "os-write-fd-2",
        'os.write(2, f"key is {k}\\n".encode())',
        {"log": out("key is ********", stream="stderr")},
    ),
    (
        "subprocess-output",
        'subprocess.run(["sh", "-c", "echo key is $API_KEY"])',
        {"log": out("key is ********")},
    ),
    (
        "chalk-logger",
        'chalk_logger.info("key is %s", k)',
        {"log": out("key is ********", level="INFO")},
    ),
    (
        "chalk-logger-exception",
        'try:\n    raise ValueError(k)\nexcept ValueError:\n    chalk_logger.exception("failed")',
        {"record": "\nValueError: ********"},
    ),
    (
        "exception-message",
        'raise ValueError(f"bad key {k}")',
        {"error_message": "bad key ********", "traceback": "ValueError: bad key ********"},
    ),
    (
        "traceback-of-a-chained-exception",
        'try:\n    {}[k]\nexcept KeyError:\n    raise RuntimeError("lookup failed")',
        {"error_message": "lookup failed", "traceback": "KeyError: '********'"},
    ),
    ("returned-value", 'return {"key": k}', {"return_value": {"key": "********"}}),
    ("returned-repr", "return {k}", {"return_value": "{'********'}"}),
    ("pem-printed-whole", "print(pem)", {"log": out("********")}),
    ("pem-written-whole-to-fd-1", "os.write(1, pem.encode())", {"log": out("********")}),
    (
        "pem-line-by-line",
        "for n, line in enumerate(pem.splitlines()):\n    print(n, line)",
        {"log": out("0 ********", "1 ********", "2 ********", "3 ********")},
    ),
    (
        "pem-in-a-record",
        'chalk_logger.info("key:\\n%s", pem)',
        {"log": out("key:\n********", level="INFO")},
    ),
    ("pem-in-an-exception", "raise RuntimeError(pem)", {"error_message": "********"}),
    (
        "value-with-newline-printed-stripped",
        'print(f"[{token.strip()}]")',
        {"log": out("[********]")},
    ),
    (
        "value-with-newline-printed-whole",
        'print("token", token, "end")',
        {"log": out("token ******** end")},
    ),
    ("repr", "print(repr(q))\nprint([q])", {"log": out("'********'", "['********']")}),
    ("repr-of-the-bytes", "print(q.encode())", {"log": out("b'********'")}),
    (
        "ascii",
        "print(ascii(u))\nprint(ascii([q]))\nprint(repr(u.encode()))",
        {"log": out("'********'", "['********']", "b'********'")},
    ),
    ("json-dumps", 'print(json.dumps({"q": q}))', {"log": out('{"q": "********"}')}),
    (
        "json-dumps-unicode",
        'print(json.dumps({"q": q}, ensure_ascii=False))',
        {"log": out('{"q": "********"}')},
    ),
    (
        "split-across-two-flushed-prints",
        'print(k[:6], end="", flush=True)\nprint(k[6:], flush=True)',
        {"log": out("********")},
    ),
    (
        "split-across-two-os-writes",
        'os.write(1, k[:6].encode())\ntime.sleep(0.05)\nos.write(1, (k[6:] + "\\n").encode())',
        {"log": out("********")},
    ),
    (
        "split-across-a-pause",
        'print(k[:6], end="", flush=True)\ntime.sleep(0.6)\nprint(k[6:], flush=True)',
        {"log": out("********")},
    ),
    (
        "split-across-a-pause-in-os-writes",
        'os.write(1, b"key: " + k[:6].encode())\ntime.sleep(0.6)\nos.write(1, k[6:].encode())',
        {"log": out("key: ", "********")},
    ),
    (
        "split-across-a-pause-longer-than-a-partial-line-waits",
        'print("key:", k[:6], end="", flush=True)\ntime.sleep(1.5)\nprint(k[6:], flush=True)',
        {"log": out("key: ", "********")},
    ),
    (
        "split-by-a-print-to-stderr",
        'print("key:", k[:6], end="", flush=True)\nprint("careful", file=sys.stderr)\nprint(k[6:])',
        {"log": [*out("key: "), *out("careful", stream="stderr"), *out("********")]},
    ),
    (
        "split-by-a-record",
        'print("key:", k[:6], end="", flush=True)\nchalk_logger.info("careful")\nprint(k[6:])',
        {"log": [*out("key: "), *out("careful", level="INFO"), *out("********")]},
    ),
    (
        "a-start-of-a-value-at-the-end-of-the-output-is-not-lost",
        'print("done: sk-li", end="", flush=True)\nprint("x", file=sys.stderr)\n'
        'os.write(1, b"sk-li")',
        {"log": [*out("done: "), *out("x", stream="stderr"), *out("sk-li", "sk-li")]},
    ),
    (
        "written-a-character-at-a-time",
        "for c in k:\n    sys.stdout.write(c)\n    sys.stdout.flush()\nprint()",
        {"log": out("********")},
    ),
    (
        "across-the-cut-of-a-long-line",
        f'print("x" * {MAX_LINE_CHARS - 5} + k)',
        {"log": out("x" * (MAX_LINE_CHARS - 5) + "*****", "***")},
    ),
    (
        "across-the-cut-of-a-long-record",
        f'chalk_logger.warning("x" * {MAX_LINE_CHARS - 5} + k)',
        {"log": out("x" * (MAX_LINE_CHARS - 5) + "*****", "***", level="WARNING")},
    ),
    (
        "across-the-reads-of-a-long-write-to-fd-1",
        f'os.write(1, ("y" * {4 * MAX_LINE_CHARS - 5} + k + "\\n").encode())',
        {"log": out(*["y" * MAX_LINE_CHARS] * 3, "y" * (MAX_LINE_CHARS - 5) + "*****", "***")},
    ),
    (
        "a-long-exception-message-cut-inside-the-value",
        f'raise ValueError("x" * {MAX_ERROR_MESSAGE - 5} + k)',
        {"absent": [KEY[:5]], "cut": ("error_message", "x" * 1000, "x…")},
    ),
    (
        "a-long-traceback-cut-inside-the-value",
        f'raise ValueError(k + "z" * {MAX_TRACEBACK - 11})',
        {"absent": [KEY[10:]], "cut": ("traceback", "…", "zzz\n")},
    ),
    (
        "a-long-returned-value-cut-inside-the-value",
        f'return "y" * {MAX_RETURN_BYTES - 7} + k',
        {"absent": [KEY[:5]], "cut": ("return_value", '"yyy', "yyy")},
    ),
    (
        "prints-and-records-keep-their-order",
        'print("a")\nchalk_logger.info("b")\nprint("c", file=sys.stderr)\nprint("d")',
        {"log": [*out("a"), *out("b", level="INFO"), *out("c", stream="stderr"), *out("d")]},
    ),
]


def reported_texts(result) -> list[str]:
    outcome = result.outcome or {}
    fields = ("error_message", "traceback", "return_value", "reason")
    return [line["text"] for line in result.lines] + [str(outcome.get(f) or "") for f in fields]


def assert_nothing_leaks(result) -> None:
    forms = Masker(SECRETS.values()).forms
    for text in reported_texts(result):
        for form in forms:
            assert form not in text, f"{form!r} in {text!r}"


@pytest.mark.parametrize("body, expected", [row[1:] for row in ROWS], ids=[row[0] for row in ROWS])
def test_a_run_reports_no_secret(body, expected):
    result = run_runner(attempt_spec(PRELUDE + body, SECRETS))

    assert result.returncode == 0, result.stderr
    outcome = result.outcome
    assert_nothing_leaks(result)
    for part in expected.get("absent", []):
        assert not any(part in text for text in reported_texts(result)), part
    if "log" in expected:
        assert result.log == expected["log"]
    if "record" in expected:
        assert expected["record"] in result.lines[0]["text"]
    for key in ("error_message", "return_value"):
        if key in expected:
            assert outcome[key] == expected[key]
    if "cut" in expected:
        key, start, end = expected["cut"]
        assert outcome[key].startswith(start) and outcome[key].endswith(end)
    if "traceback" in expected:
        assert outcome["status"] == "failed"
        assert expected["traceback"] in outcome["traceback"]


WRITE_200_MIB_TO_FD_1 = """
data = memoryview(b"x" * (200 << 20))
while data:
    data = data[os.write(1, data):]
"""
BIG_ROWS = [
    ("print", 'print("x" * (200 << 20), end="")'),
    ("os-write-fd-1", WRITE_200_MIB_TO_FD_1),
    ("chalk-logger", 'chalk_logger.info("x" * (200 << 20))'),
]
MAX_LOG_BYTES = 10_000_000


@pytest.fixture(scope="module")
def runner_baseline_rss() -> int:
    result = run_runner(attempt_spec('print("hello")'))
    assert result.log == out("hello")
    return result.peak_rss


@pytest.mark.slow
@pytest.mark.parametrize("body", [row[1] for row in BIG_ROWS], ids=[row[0] for row in BIG_ROWS])
def test_a_200_mib_line_without_a_newline_is_cut_and_costs_the_runner_no_memory(
    body, runner_baseline_rss
):
    result = run_runner(
        attempt_spec(body, {"API_KEY": KEY}, max_log_bytes=MAX_LOG_BYTES), timeout=300
    )

    assert result.returncode == 0, result.stderr
    assert result.outcome["status"] == "succeeded"
    assert result.outcome["log_truncated"]
    *pieces, last = result.lines
    assert last["stream"] == "system" and last["text"].startswith("log truncated")
    assert all(set(piece["text"]) == {"x"} for piece in result.posted)
    assert all(len(piece["text"]) <= MAX_LINE_CHARS for piece in result.posted)
    assert MAX_LOG_BYTES - MAX_LINE_CHARS < sum(len(piece["text"]) for piece in pieces)
    # The runner stops at the line that passes the cap: it sends no more than that.
    assert sum(len(piece["text"]) for piece in result.posted) <= MAX_LOG_BYTES + MAX_LINE_CHARS
    assert result.peak_rss - runner_baseline_rss < 16 * 2**20, (
        f"the runner grew by {(result.peak_rss - runner_baseline_rss) / 2**20:.1f} MiB"
    )


# --- the Masker ----------------------------------------------------------------------------


def test_it_masks_each_form_of_a_value():
    value = 'o\'k "x"\\y é\n'  # o'k "x"\y é and a newline
    stripped = value.strip()
    assert secret_forms(value) == {
        value,
        stripped,
        r"""o\'k "x"\\y é\n""",  # repr()
        r"""o\'k "x"\\y é""",
        r"""o\'k "x"\\y \xc3\xa9\n""",  # repr() of the UTF-8 bytes
        r"""o\'k "x"\\y \xc3\xa9""",
        r"""o\'k "x"\\y \xe9\n""",  # ascii()
        r"""o\'k "x"\\y \xe9""",
        r"""o'k \"x\"\\y \u00e9\n""",  # json.dumps()
        r"""o'k \"x\"\\y \u00e9""",
        r"""o'k \"x\"\\y é\n""",  # json.dumps(ensure_ascii=False)
        r"""o'k \"x\"\\y é""",
    }
    assert {repr(stripped)[1:-1], json.dumps(value)[1:-1]} <= secret_forms(value)


@pytest.mark.parametrize(
    "text, expected",
    [
        ("key=sk-live-1", "key=********"),
        ("sk-live-1sk-live-1", "********"),  # adjacent: one mask
        ("'sk-live-1'", "'********'"),
        ("no secret here", "no secret here"),
    ],
)
def test_it_masks_a_text(text, expected):
    assert Masker(["sk-live-1"]).mask(text) == expected


def test_it_masks_the_escaped_forms_whatever_quotes_the_text_around_them_takes():
    masker = Masker(["pässwörd", "it's-a-key", "key-🔑-x"])
    assert masker.mask(ascii("pässwörd")) == f"'{MASK}'"  # 'p\xe4ssw\xf6rd'
    assert masker.mask(ascii(["x", "pässwörd"])) == f"['x', '{MASK}']"
    assert masker.mask(ascii("key-🔑-x")) == f"'{MASK}'"  # \U0001f511
    assert masker.mask(json.dumps("key-🔑-x")) == f'"{MASK}"'  # \ud83d\udd11
    assert masker.mask(repr("it's-a-key")) == f'"{MASK}"'  # no escape: "it's-a-key"
    assert masker.mask(repr('"it\'s-a-key"')) == f"'\"{MASK}\"'"  # '"it\'s-a-key"'
    assert masker.mask(repr(b'"it\'s-a-key"')) == f"b'\"{MASK}\"'"


def test_it_leaves_values_shorter_than_three_characters_alone():
    masker = Masker(["1", "ab", " x \n"])
    assert masker.forms == ()
    assert masker.mask("1 ab x") == "1 ab x"


def test_it_masks_each_line_of_a_multi_line_value_of_three_characters_or_more():
    masker = Masker(["first-line\nab\nthird-line"])
    assert masker.mask("first-line") == MASK
    assert masker.mask("third-line, ab") == f"{MASK}, ab"  # "ab" is too short alone
    assert masker.mask("first-line\nab\nthird-line") == MASK


def test_it_masks_the_longest_form_whole_and_overlapping_values_together():
    masker = Masker(["abc-def", "abc-def-ghi", "ghi-jkl"])
    assert masker.mask("abc-def-ghi") == MASK
    assert masker.mask("abc-def-ghi-jkl!") == f"{MASK}!"  # overlapping: no tail shows


def test_a_stream_masks_a_value_split_across_any_two_chunks():
    secret = "sk-live-9f8e7d6c5b4a"
    text = f"a {secret} b {secret}{secret} c"
    masker = Masker([secret])
    for cut in range(len(text) + 1):
        stream = masker.stream()
        masked = stream.feed(text[:cut]) + stream.feed(text[cut:]) + stream.flush()
        assert masked == f"a {MASK} b {MASK} c", cut


def test_a_stream_holds_back_no_more_than_the_longest_form_less_one():
    masker = Masker(["secret-value"])
    stream = masker.stream()
    assert stream.feed("hello world, and more") == "hello worl"
    assert stream.pending() == len("secret-value") - 1
    assert stream.feed(" secret-") == "d, and m"
    assert stream.feed("value.") == f"ore {MASK}"
    assert stream.flush() == "."


def test_a_pause_lets_out_all_but_a_tail_that_may_start_a_secret():
    stream = Masker(["secret-value"]).stream()
    assert stream.feed("key: secret-") + stream.flush(final=False) == "key: "
    assert stream.pending() == len("secret-")
    assert stream.feed("value.\n") + stream.flush(final=False) == f"{MASK}.\n"
    assert stream.feed("none here.") + stream.flush(final=False) == "none here."
    assert stream.feed("done: sec") + stream.flush(final=False) == "done: "
    assert stream.flush() == "sec"  # the end of the stream: nothing more can follow
    assert stream.pending() == 0


def test_a_stream_one_character_at_a_time():
    masker = Masker(["abcabd", "bca"])
    text = "xabcabcabdx abcax"
    stream = masker.stream()
    masked = "".join(stream.feed(c) for c in text) + stream.flush()
    assert masked == masker.mask(text) == f"xa{MASK}x a{MASK}x"


def test_a_cut_text_drops_what_may_be_part_of_a_secret():
    masker = Masker(["sk-live-9f8e"])
    assert masker.mask("error: sk-live", cut_end=True) == "err"
    assert masker.mask("-9f8e and then", cut_start=True) == "hen"  # 11 characters go
    assert masker.mask("sk-live-9f8e and then", cut_start=True) == f"{MASK} and then"


def test_without_secrets_nothing_is_held_back():
    stream = Masker([]).stream()
    assert stream.feed("hello") == "hello"
    assert stream.flush() == ""


def test_a_json_form_inside_a_log_record_is_masked():
    secret = 'with "quotes"'
    assert Masker([secret]).mask(json.dumps({"v": secret})) == '{"v": "********"}'


def test_a_stream_masks_as_the_whole_text_is_masked_however_it_is_cut_and_paused():
    rng = random.Random(5)
    for _ in range(2000):
        secrets = ["".join(rng.choices("ab\n'", k=rng.randint(1, 7))) for _ in range(3)]
        masker = Masker(secrets)
        text = "".join(rng.choices("ab\n'xy", k=rng.randint(0, 60)))
        stream = masker.stream()
        masked, start = [], 0
        while start < len(text):
            size = rng.randint(0, 9)
            masked.append(stream.feed(text[start : start + size]))
            if rng.random() < 0.3:
                masked.append(stream.flush(final=False))
            start += size
        masked.append(stream.flush())
        assert "".join(masked) == masker.mask(text), (secrets, text)
