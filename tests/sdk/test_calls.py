"""`RunHandle.get()` (what `remote()` returns) against the live server: what the run's function
returned, as Python values when it was JSON and as its repr() when not, or the run's error.
The runs go through the platform's services as a runner's reports do."""

import pytest
from django.utils import timezone

from chalkcompute import RemoteExecutionError
from chalkcompute.calls import start_run
from runs.models import Run
from runs.services import attempt_begin, attempt_claim, attempt_finish
from tests.personas import make_token
from tests.runs.support import deploy


@pytest.fixture
def finished(live_server, transactional_db, monkeypatch):
    """Starts a run of "rates" as remote() does, and ends it as its runner would report."""
    deploy("rates", "pass")
    _, token = make_token("caller", role="operator")
    monkeypatch.setenv("CHALK_COMPUTE_URL", live_server.url)
    monkeypatch.setenv("CHALK_COMPUTE_TOKEN", token)

    def finish(status: str, return_value=None, return_format: str = ""):
        handle = start_run("rates", (), {})
        now = timezone.now()
        run = Run.objects.get(id=handle.run_id)
        attempt, _ = attempt_claim(
            attempt_id=run.attempts.get().id, executor="local", executor_ref="test", now=now
        )
        attempt_begin(attempt=attempt, now=now)
        attempt_finish(
            attempt=attempt, status=status, now=now, error_type="KeyError",
            return_value=return_value, return_format=return_format,
        )  # fmt: skip
        return handle

    return finish


def test_get_returns_a_json_value_as_python_values(finished):
    handle = finished("succeeded", {"EUR": 0.9, "days": [1, 2]}, "json")

    assert handle.get(timeout=30) == {"EUR": 0.9, "days": [1, 2]}


def test_get_returns_a_value_that_was_not_json_as_its_repr(finished):
    assert finished("succeeded", "{'EUR', 'USD'}", "repr").get(timeout=30) == "{'EUR', 'USD'}"


def test_get_returns_none_for_a_function_that_returned_nothing(finished):
    assert finished("succeeded").get(timeout=30) is None


def test_get_raises_for_a_run_that_failed(finished):
    with pytest.raises(RemoteExecutionError, match="failed") as raised:
        finished("failed").get(timeout=30)

    assert raised.value.error_type == "KeyError"
