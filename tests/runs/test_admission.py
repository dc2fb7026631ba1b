"""Admission on the local executor: a run starts when its cpu and memory requests fit what
the machine has free, waits (saying what for) when they do not, and fails at once when they
never could. The rules on their own, then on a real runs worker."""

import threading
import time
from decimal import Decimal

import pytest
from django.core.exceptions import ImproperlyConfigured
from django.utils import timezone

from runs.executors.local.admission import (
    Admission,
    Resources,
    machine_capacity,
    memory_words,
    requests_of,
)
from runs.models import LogLine, Run
from runs.services import run_trigger
from tests.personas import acting
from tests.runs.support import deploy, wait_for, wait_for_run

GI = 2**30
MACHINE = Resources(cpu=Decimal(2), memory=24 * GI)


def test_a_function_without_requests_holds_the_small_defaults(settings):
    settings.CHALK_LOCAL_DEFAULT_CPU, settings.CHALK_LOCAL_DEFAULT_MEMORY = "10m", "64Mi"

    assert requests_of(None, None) == Resources(cpu=Decimal("0.01"), memory=64 * 2**20)
    assert requests_of("1.5", "16Gi") == Resources(cpu=Decimal("1.5"), memory=16 * GI)


def test_sixty_small_functions_fit_a_two_core_machine_at_once():
    admission = Admission(MACHINE, max_runs=256)
    small = requests_of(None, None)

    assert all(admission.hold(n, small, lambda why: False) for n in range(60))
    assert admission.held() == Resources(cpu=Decimal("0.60"), memory=60 * 64 * 2**20)


def test_a_run_that_does_not_fit_waits_saying_what_for_and_starts_when_another_ends():
    admission = Admission(MACHINE, max_runs=256)
    large = requests_of(None, "16Gi")
    assert admission.hold(1, large, lambda why: False)
    said, started = [], threading.Event()

    def second():
        admission.hold(2, large, lambda why: said.append(why) or True)
        started.set()

    threading.Thread(target=second, daemon=True).start()
    time.sleep(0.3)
    assert not started.is_set()
    admission.release(1)

    assert started.wait(5)
    assert said[:1] == ["waiting for 16Gi of memory: 16Gi of 24Gi held by other runs"]
    assert admission.held().memory == 16 * GI


def test_a_waiting_run_gives_up_when_its_waiting_says_so():
    admission = Admission(MACHINE, max_runs=256)
    assert admission.hold(1, requests_of("2", None), lambda why: False)

    said = []
    assert not admission.hold(2, requests_of("500m", None), lambda why: said.append(why) or False)
    assert said == ["waiting for 500m cpu: 2 of 2 held by other runs"]


def test_max_runs_is_a_ceiling_whatever_the_requests():
    admission = Admission(MACHINE, max_runs=2)
    small = requests_of(None, None)
    assert admission.hold(1, small, lambda why: False)
    assert admission.hold(2, small, lambda why: False)

    said = []
    assert not admission.hold(3, small, lambda why: said.append(why) or False)
    assert said == [
        "waiting for a run to end: 2 runs are running, the most at once (CHALK_LOCAL_MAX_RUNS)"
    ]


@pytest.mark.parametrize(
    ("cpu", "memory", "why"),
    [
        ("3", None, "it asks for 3 cpu; the local executor has 2 (CHALK_LOCAL_CPU)"),
        (None, "32Gi",
         "it asks for 32Gi of memory; the local executor has 24Gi (CHALK_LOCAL_MEMORY)"),
        ("2", "24Gi", None),
    ],
)  # fmt: skip
def test_a_run_that_could_never_fit_is_told_why(cpu, memory, why):
    assert Admission(MACHINE, max_runs=4).never_fits(requests_of(cpu, memory)) == why


def test_capacity_comes_from_the_settings_or_the_machine(settings):
    settings.CHALK_LOCAL_CPU, settings.CHALK_LOCAL_MEMORY = "7500m", "16Gi"
    assert machine_capacity() == Resources(cpu=Decimal("7.5"), memory=16 * GI)

    settings.CHALK_LOCAL_CPU, settings.CHALK_LOCAL_MEMORY = "", ""
    machine = machine_capacity()
    assert 1 <= machine.cpu <= 1024 and machine.memory > GI


@pytest.mark.parametrize(
    ("name", "value", "words"),
    [
        ("CHALK_LOCAL_CPU", "lots", "cpu 'lots' is not a Kubernetes quantity"),
        ("CHALK_LOCAL_MEMORY", "16g", "memory '16g' has an unknown suffix 'g'"),
        ("CHALK_LOCAL_DEFAULT_MEMORY", "64", "too small to run Python"),
    ],
)
def test_a_capacity_or_default_that_is_not_a_quantity_stops_the_worker(
    settings, name, value, words
):
    setattr(settings, name, value)

    with pytest.raises(ImproperlyConfigured, match=words):
        machine_capacity()


def test_memory_is_said_as_people_say_it():
    assert [memory_words(size) for size in (24 * GI, int(20.15 * GI), 64 * 2**20)] == [
        "24Gi",
        "20.1Gi",
        "64Mi",
    ]


@pytest.mark.slow
def test_on_a_real_worker_large_runs_take_turns_and_one_too_large_fails_at_once(platform):
    platform.env["CHALK_LOCAL_MEMORY"] = "24Gi"
    platform.start_workers(concurrency=8)
    large = deploy("batch-inference", "import time\ntime.sleep(1.5)", memory="16Gi")
    huge = deploy("too-big", "pass", memory="32Gi")
    now = timezone.now()
    runs = [
        run_trigger(function=large, trigger="manual", actor=acting("test"), now=now)
        for _ in range(3)
    ]
    refused = run_trigger(function=huge, trigger="manual", actor=acting("test"), now=now)

    ended = [wait_for_run(run.id, timeout=90) for run in runs]
    assert [run.status for run in ended] == ["succeeded"] * 3
    spans = sorted((run.started_at, run.finished_at) for run in ended)
    assert all(later[0] >= earlier[1] for earlier, later in zip(spans, spans[1:], strict=False))
    waited = LogLine.objects.filter(
        attempt__run__in=runs, stream="system",
        text="waiting for 16Gi of memory: 16Gi of 24Gi held by other runs",
    ).values_list("attempt__run_id", flat=True)  # fmt: skip
    assert len(set(waited)) == 2  # the first started at once; the other two said why they waited

    refused = wait_for(lambda: Run.objects.filter(id=refused.id, status="failed").first())
    assert refused.status_reason == (
        "it asks for 32Gi of memory; the local executor has 24Gi (CHALK_LOCAL_MEMORY)"
    )
    assert refused.attempts.count() == 1  # no retry could fit either
