import datetime as dt

import pytest

from chalkcompute import words


@pytest.mark.parametrize(
    ("seconds", "said"),
    [
        (None, "—"),
        (0.42, "0.4 s"),
        (12.4, "12 s"),
        (192, "3 min 12 s"),
        (600, "10 min"),
        (7500, "2 h 5 min"),
        (3 * 86400 + 4 * 3600, "3 d 4 h"),
    ],
)
def test_a_duration_in_a_table_is_compact(seconds, said):
    assert words.duration(seconds) == said


@pytest.mark.parametrize(
    ("seconds", "said"),
    [
        (1, "1 second"),
        (45, "45 seconds"),
        (90, "90 seconds"),  # under two minutes, and not one
        (60, "1 minute"),
        (3600, "1 hour"),  # exact: the largest unit that counts it
        (5400, "90 minutes"),
        (2 * 86400, "2 days"),
        (3725, "62 minutes"),  # not exact: the largest unit it holds twice, rounded down
        (7300.5, "2 hours"),
        (dt.timedelta(minutes=15), "15 minutes"),
    ],
)
def test_a_duration_in_a_sentence_is_spelled_out(seconds, said):
    assert words.spelled_duration(seconds) == said


def test_a_wait_is_never_said_shorter_than_it_is():
    assert words.spelled_duration(150, round_up=True) == "3 minutes"
    assert words.spelled_duration(900, round_up=True) == "15 minutes"
    assert words.spelled_duration(30, round_up=True) == "30 seconds"


@pytest.mark.parametrize(
    ("seconds", "said"),
    [(0.5, "now"), (12, "in 12 s"), (-1850, "31 min ago"), (4 * 3600, "in 4 h")],
)
def test_a_moment_from_now_is_coarse(seconds, said):
    assert words.relative(seconds) == said


@pytest.mark.parametrize(
    ("seconds", "said"), [(86400, "1d"), (7200, "2h"), (600, "10m"), (90, "90s"), (0.5, "0.5s")]
)
def test_an_interval_is_said_as_the_sdk_takes_it(seconds, said):
    assert words.interval(seconds) == said


@pytest.mark.parametrize(
    ("size", "said"), [(None, "—"), (80 * 2**20, "80.0 MiB"), (1536 * 2**20, "1.50 GiB")]
)
def test_a_size_is_in_binary_units(size, said):
    assert words.size(size) == said
