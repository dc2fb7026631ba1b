"""Personas and data for the console tests.

olivia runs the platform (the admin role): the console is hers. oscar has a login but no
role (an outsider: 403 everywhere). An anonymous visitor is sent to the login page. Functions are
deployed through scheduling.services and runs go through runs.services, as the platform
itself writes them; the browser tests deploy through the SDK and run real workers.
"""

import datetime as dt

import pytest
from django.contrib.auth import get_user_model
from django.contrib.auth.models import Group
from django.test import Client
from django.utils import timezone

from runs import logs as run_logs
from runs import services as run_services
from runs.models import Run
from scheduling.models import Function
from tests.personas import acting
from tests.runs.conftest import deploy, platform  # noqa: F401 - `platform` is a fixture

OLIVIA_PASSWORD = "olivia-operates-7"


@pytest.fixture
def olivia(db):
    olivia = get_user_model().objects.create_user("olivia", password=OLIVIA_PASSWORD)
    olivia.groups.add(Group.objects.get(name="admin"))
    return olivia


@pytest.fixture
def oscar(db):
    return get_user_model().objects.create_user("oscar", password="oscar-outsider-7")


@pytest.fixture
def console(olivia) -> Client:
    """olivia's logged-in browser session, as the Django test client."""
    client = Client()
    client.force_login(olivia)
    return client


@pytest.fixture
def outsider(oscar) -> Client:
    client = Client()
    client.force_login(oscar)
    return client


@pytest.fixture
def anonymous(db) -> Client:
    return Client()


@pytest.fixture
def rates(db) -> Function:
    """refresh-rates: hourly, 1 CPU, 1 GiB, 3 retries, a 10-minute timeout."""
    return deploy(
        "refresh-rates",
        'chalk_logger.info("refreshing")',
        schedule="0 * * * *",
        retries=3,
        timeout=600,
        memory="1Gi",
    )


def finish_run(
    function: Function,
    *,
    lines: list[tuple[str, str]] = (),
    status: str = "succeeded",
    error: tuple[str, str, str] | None = None,
    samples: list[tuple[float, int]] = (),
    at: dt.datetime | None = None,
    active: bool = False,
    returned: tuple[object, str] = (None, ""),
) -> Run:
    """A manual run that went through the platform's own services: claimed, begun, logging
    `lines` ((level, text)), sampling `samples` ((cpu_seconds, rss_bytes) one a second), and
    finished with `status` (and `error`: type, message, traceback; `returned`: the return value
    and its format) unless `active`."""
    now = at or timezone.now()
    run = run_services.run_trigger(
        function=function, trigger="manual", actor=acting("olivia"), now=now
    )
    attempt = run.attempts.get()
    attempt, _ = run_services.attempt_claim(
        attempt_id=attempt.id, executor="local", executor_ref="4242@worker-1", now=now
    )
    run_services.attempt_begin(attempt=attempt, now=now)
    if lines:
        run_logs.log_append(
            attempt=attempt,
            first_seq=0,
            lines=[
                {"ts": (now + dt.timedelta(seconds=i)).timestamp(), "level": level, "text": text}
                for i, (level, text) in enumerate(lines)
            ],
            now=now,
        )
    if samples:
        run_logs.usage_append(
            attempt=attempt,
            samples=[
                {
                    "ts": (now + dt.timedelta(seconds=i)).timestamp(),
                    "cpu_seconds": cpu,
                    "rss_bytes": rss,
                }
                for i, (cpu, rss) in enumerate(samples)
            ],
            now=now,
        )
    if not active:
        error_type, message, traceback = error or ("", "", "")
        run_services.attempt_finish(
            attempt=attempt,
            status=status,
            now=now + dt.timedelta(seconds=max(len(lines), len(samples), 1)),
            exit_code=0 if status == "succeeded" else 1,
            error_type=error_type,
            error_message=message,
            traceback=traceback,
            return_value=returned[0],
            return_format=returned[1],
        )
    return Run.objects.get(id=run.id)


@pytest.fixture(autouse=True)
def fast_password_hashing(settings):
    # The default hasher takes a third of a second by design; tests log in many times.
    settings.PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]
