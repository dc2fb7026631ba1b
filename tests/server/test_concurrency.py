"""Two deploys of one name at the same moment get consecutive versions, and neither fails."""

import threading

import pytest
from django.db import connections
from django.utils import timezone

from chalkcompute.spec import FunctionSpec
from scheduling.models import Function, FunctionVersion
from scheduling.services import function_deploy
from tests.personas import acting

ROUNDS = 3


def deploy(name: str, source: str) -> None:
    try:
        function_deploy(
            name=name,
            source=source,
            source_filename="job.py",
            entrypoint="job",
            spec=FunctionSpec(schedule="10m"),
            actor=acting("race"),
            now=timezone.now(),
        )
    finally:
        connections.close_all()


def race(name: str, sources: list[str]) -> list[BaseException]:
    """Deploys `sources` to `name` from one thread each, released at the same moment."""
    barrier = threading.Barrier(len(sources))
    errors: list[BaseException] = []

    def racer(source: str) -> None:
        barrier.wait()
        try:
            deploy(name, source)
        except BaseException as exc:  # noqa: BLE001 - reported by the caller's assertion
            errors.append(exc)

    threads = [threading.Thread(target=racer, args=(source,)) for source in sources]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=30)
    return errors


def version_numbers(name: str) -> list[int]:
    return sorted(
        FunctionVersion.objects.filter(function__name=name).values_list("number", flat=True)
    )


@pytest.mark.postgres  # SQLite serialises every write transaction: deploys cannot race there
@pytest.mark.django_db(transaction=True)
def test_it_numbers_two_concurrent_first_deploys_one_and_two():
    for round_number in range(ROUNDS):
        name = f"race-{round_number}"
        errors = race(name, ["def job():\n    return 1\n", "def job():\n    return 2\n"])

        assert errors == []
        assert version_numbers(name) == [1, 2]
        assert Function.objects.get(name=name).current_version.number == 2


@pytest.mark.postgres
@pytest.mark.django_db(transaction=True)
def test_it_numbers_two_concurrent_redeploys_two_and_three():
    for round_number in range(ROUNDS):
        name = f"race-{round_number}"
        deploy(name, "def job():\n    return 0\n")
        errors = race(name, ["def job():\n    return 1\n", "def job():\n    return 2\n"])

        assert errors == []
        assert version_numbers(name) == [1, 2, 3]
        assert Function.objects.get(name=name).current_version.number == 3
