"""Rules that live in one service, so the API, the console and the admin cannot differ:
the longest pause reason, pausing several functions at once, and run now without a version."""

import pytest
from django.utils import timezone

from runs.errors import NotDeployedError
from runs.models import Run
from runs.services import run_trigger
from scheduling.errors import SchedulingError
from scheduling.models import Function
from scheduling.services import MAX_PAUSE_REASON, function_pause, functions_pause
from tests.personas import acting
from tests.runs.support import deploy

pytestmark = pytest.mark.django_db


def test_it_refuses_a_pause_reason_longer_than_the_limit_and_pauses_nothing():
    rates = deploy("refresh-rates", "pass", schedule="0 * * * *")

    with pytest.raises(SchedulingError) as refused:
        function_pause(
            function=rates,
            actor=acting("olivia"),
            reason="x" * (MAX_PAUSE_REASON + 1),
            now=timezone.now(),
        )

    assert refused.value.message == (
        f"A reason is at most {MAX_PAUSE_REASON} characters; this one is {MAX_PAUSE_REASON + 1}. "
        "Shorten it."
    )
    rates.refresh_from_db()
    assert not rates.paused


def test_it_pauses_several_functions_all_or_none():
    rates = deploy("refresh-rates", "pass", schedule="0 * * * *")
    rollup = deploy("nightly-rollup", "pass", schedule="0 2 * * *")

    with pytest.raises(SchedulingError):
        functions_pause(
            functions=[rates, rollup], actor=acting("olivia"), reason="x" * 501, now=timezone.now()
        )
    assert not Function.objects.filter(paused=True).exists()

    functions_pause(
        functions=[rates, rollup], actor=acting("olivia"), reason="", now=timezone.now()
    )
    assert Function.objects.filter(paused=True).count() == 2


def test_it_refuses_to_run_a_function_with_no_deployed_version():
    now = timezone.now()
    bare = Function.objects.create(name="never-deployed", created_at=now, updated_at=now)

    with pytest.raises(NotDeployedError) as refused:
        run_trigger(function=bare, trigger="api", actor=acting("alice"), now=now)

    assert (
        refused.value.message == "never-deployed has no deployed version to run; deploy it first."
    )
    assert (refused.value.status, refused.value.code) == (409, "not_deployed")
    assert not Run.objects.exists()
