"""`chalkcompute.current_run()`: the run's facts from the variables its runner sets (the runner's
side is in tests/runs/test_run_context.py), and a clear error outside a run."""

import dataclasses
import datetime as dt

import pytest

import chalkcompute
from chalkcompute.run_context import VARIABLES, environment

FACTS = {
    "run_id": 41,
    "attempt": 2,
    "trigger": "schedule",
    "slot": "2026-03-01T12:00:00Z",
    "previous_success_slot": "2026-03-01T11:00:00Z",
    "function": "nightly-rollup",
    "version": 7,
}


@pytest.fixture
def in_a_run(monkeypatch):
    def enter(facts: dict) -> None:
        for name, value in environment(facts).items():
            monkeypatch.setenv(name, value)

    return enter


def test_it_describes_the_run_from_the_variables_its_runner_sets(in_a_run):
    in_a_run(FACTS)

    run = chalkcompute.current_run()

    assert run == chalkcompute.RunContext(
        run_id=41,
        attempt=2,
        trigger="schedule",
        slot=dt.datetime(2026, 3, 1, 12, tzinfo=dt.UTC),
        previous_success_slot=dt.datetime(2026, 3, 1, 11, tzinfo=dt.UTC),
        function="nightly-rollup",
        version=7,
    )
    with pytest.raises(dataclasses.FrozenInstanceError):
        run.slot = None


def test_a_run_started_by_hand_has_no_slot(in_a_run):
    in_a_run({**FACTS, "trigger": "api", "slot": None, "previous_success_slot": None})

    run = chalkcompute.current_run()

    assert (run.trigger, run.slot, run.previous_success_slot) == ("api", None, None)


def test_the_variables_are_named_for_programs_in_any_language():
    assert environment(FACTS) == {
        "CHALK_RUN_ID": "41",
        "CHALK_RUN_ATTEMPT": "2",
        "CHALK_RUN_TRIGGER": "schedule",
        "CHALK_RUN_SLOT": "2026-03-01T12:00:00Z",
        "CHALK_RUN_PREVIOUS_SUCCESS_SLOT": "2026-03-01T11:00:00Z",
        "CHALK_FUNCTION_NAME": "nightly-rollup",
        "CHALK_FUNCTION_VERSION": "7",
    }


def test_outside_a_run_it_raises_a_clear_error(monkeypatch):
    for name in VARIABLES.values():
        monkeypatch.delenv(name, raising=False)

    with pytest.raises(chalkcompute.NotInRunError) as raised:
        chalkcompute.current_run()

    assert str(raised.value).startswith(
        "current_run() is only available inside a Chalkweb run; here CHALK_RUN_ID is not set"
    )
    assert isinstance(raised.value, chalkcompute.FunctionError)
