"""What a run reports of its function's return value: the value itself when it is JSON, its
repr() when not, the start of it past the cap, secrets masked (a real runner and its child,
runner_harness; the server's side is in test_runner_api.py)."""

import pytest

from chalkcompute.runtime.returns import MAX_RETURN_BYTES
from tests.runs.runner_harness import attempt_spec, run_runner


def returned(body: str, secrets: dict[str, str] | None = None) -> dict:
    result = run_runner(attempt_spec(body, secrets))
    assert result.returncode == 0, result.stderr
    assert result.outcome["status"] == "succeeded", result.outcome
    return result.outcome


def test_a_json_value_is_reported_as_itself():
    outcome = returned('return {"rates": {"EUR": 0.9}, "days": [1, 2], "ok": True, "note": "é"}')

    assert outcome["return_value"] == {
        "rates": {"EUR": 0.9},
        "days": [1, 2],
        "ok": True,
        "note": "é",
    }
    assert outcome["return_format"] == "json"


@pytest.mark.parametrize(
    ("body", "shown"),
    [
        ("return {1, 2}", "{1, 2}"),
        ('return float("nan")', "nan"),  # json.dumps would write NaN, which is not JSON
        ('return b"raw"', "b'raw'"),
        ("import datetime\nreturn datetime.date(2026, 3, 1)", "datetime.date(2026, 3, 1)"),
    ],
)
def test_a_value_that_is_not_json_is_reported_as_its_repr(body, shown):
    outcome = returned(body)

    assert (outcome["return_value"], outcome["return_format"]) == (shown, "repr")


def test_none_is_reported_as_no_value():
    assert "return_value" not in returned("return None")


def test_a_value_past_the_cap_is_cut_to_it():
    outcome = returned('return "é" * 40_000')  # 80,002 bytes of JSON

    assert outcome["return_format"] == "cut"
    assert outcome["return_value"] == '"' + "é" * ((MAX_RETURN_BYTES - 1) // 2)


def test_a_secret_in_a_returned_value_is_masked_and_the_value_stays_json():
    outcome = returned('return {"key": os.environ["API_KEY"]}', {"API_KEY": "sk-live-9f8e7d"})

    assert (outcome["return_value"], outcome["return_format"]) == ({"key": "********"}, "json")


def test_a_secret_number_masked_leaves_the_values_text():
    outcome = returned('return {"pin": int(os.environ["PIN"])}', {"PIN": "424242"})

    assert (outcome["return_value"], outcome["return_format"]) == ('{"pin": ********}', "repr")


def test_masks_longer_than_the_secrets_they_hide_are_cut_to_the_cap_too():
    outcome = returned('return [os.environ["KEY"]] * 7_000', {"KEY": "abc"})  # 49 KB of JSON

    assert outcome["return_format"] == "cut"
    assert len(outcome["return_value"].encode()) <= MAX_RETURN_BYTES
    assert outcome["return_value"].startswith('["********", "********"')
    assert "abc" not in outcome["return_value"]
