"""The runner API's one endpoint without a token, the runtime archive that pods installing at
start download, every endpoint's answer to a wrong method, its 400s for a body it cannot read,
and the return value a finish carries. (The rest is exercised by every run the runner makes.)"""

import datetime as dt

import pytest
from rest_framework.test import APIClient

from chalkcompute.runtime.returns import MAX_RETURN_BYTES
from runs.executors.kubernetes.manifests import RUNTIME_URL_PATH
from runs.models import Attempt, LogLine, Run, UsageSample
from runs.services import attempt_claim, run_trigger
from sdk.runtime_bundle import bundle
from tests.personas import acting, make_token
from tests.runs.support import deploy

T0 = dt.datetime(2026, 3, 1, 12, 0, tzinfo=dt.UTC)
HEARTBEAT, FINISH = "/api/runner/v1/heartbeat", "/api/runner/v1/finish"


def test_it_serves_the_runtime_archive_without_a_token(client):
    response = client.get(RUNTIME_URL_PATH)

    assert response.status_code == 200
    assert response.content == bundle().archive
    assert response["Content-Type"] == "application/gzip"
    assert response["ETag"] == f'"{bundle().sha256}"'


@pytest.mark.parametrize("method", ["post", "put", "delete"])
def test_it_answers_other_methods_405_in_the_apis_error_shape(client, method):
    response = getattr(client, method)(RUNTIME_URL_PATH)

    assert response.status_code == 405
    assert response["Allow"] == "GET"
    assert response.json() == {
        "error": "method_not_allowed",
        "detail": f"{method.upper()} is not allowed on this URL; it accepts GET",
    }


def test_it_answers_head_405_too(client):
    # A test client, like a server, sends no body in answer to HEAD: only the status and headers.
    response = client.head(RUNTIME_URL_PATH)

    assert response.status_code == 405
    assert (response["Allow"], response["Content-Type"]) == ("GET", "application/json")


@pytest.mark.parametrize(
    ("path", "allowed", "wrong"),
    [
        ("/api/runner/v1/attempt", "GET", "post"),
        ("/api/runner/v1/heartbeat", "POST", "get"),
        ("/api/runner/v1/finish", "POST", "put"),
    ],
)
def test_every_endpoint_answers_a_wrong_method_405_before_asking_for_a_token(
    client, path, allowed, wrong
):
    response = getattr(client, wrong)(path)

    assert (response.status_code, response["Allow"]) == (405, allowed)
    assert response.json() == {
        "error": "method_not_allowed",
        "detail": f"{wrong.upper()} is not allowed on this URL; it accepts {allowed}",
    }


@pytest.fixture
def runner(db, client):
    """POSTs to the runner API with the token of a claimed attempt, as its runner does."""
    run = run_trigger(
        function=deploy("nightly-rollup", "pass", now=T0), trigger="manual", actor=acting("alice"),
        now=T0,
    )  # fmt: skip
    _, token = attempt_claim(
        attempt_id=run.attempts.get().id, executor="local", executor_ref="test", now=T0
    )

    def post(path: str, body: dict):
        return client.post(
            path, body, content_type="application/json", HTTP_AUTHORIZATION=f"Bearer {token}"
        )

    return post


def line(text: str) -> dict:
    return {"ts": T0.timestamp(), "stream": "stdout", "level": "", "text": text}


SAMPLE = {"ts": T0.timestamp(), "cpu_seconds": 0.5, "cpu_percent": 50.0, "rss_bytes": 1024}


@pytest.mark.parametrize(
    ("body", "detail"),
    [
        (
            {"first_seq": "zero", "lines": [line("hello")]},
            "first_seq must be a whole number, not 'zero'",
        ),
        (
            {"first_seq": 0, "lines": [line("hello")], "samples": [{**SAMPLE, "rss_bytes": None}]},
            "samples[0].rss_bytes must be a whole number, not None",
        ),
        (
            {"first_seq": 0, "lines": [line("hello")], "samples": [{"ts": T0.timestamp()}]},
            "samples[0].cpu_seconds must be a number, not None",
        ),
        (
            {"first_seq": 0, "lines": [line("hello"), "world"]},
            "each line and each sample must be a JSON object",
        ),
        ({"first_seq": 0, "lines": "hello"}, "lines and samples must be lists"),
        ({"first_seq": 2, "lines": [line("late")]}, "log lines 0..1 are missing; resend from 0"),
    ],
)
def test_it_answers_a_heartbeat_it_cannot_read_400_and_stores_none_of_it(runner, body, detail):
    response = runner(HEARTBEAT, body)

    assert response.status_code == 400
    assert response.json() == {"error": "invalid_request", "detail": detail}
    assert (LogLine.objects.count(), UsageSample.objects.count()) == (0, 0)


def test_it_stores_a_heartbeat_it_can_read(runner):
    response = runner(HEARTBEAT, {"first_seq": 0, "lines": [line("hello")], "samples": [SAMPLE]})

    assert (response.status_code, response.json()) == (200, {"cancel": False})
    assert list(LogLine.objects.values_list("text", flat=True)) == ["hello"]
    assert UsageSample.objects.get().rss_bytes == 1024


@pytest.mark.parametrize(
    ("field", "value", "detail"),
    [
        ("exit_code", "zero", "exit_code must be a whole number, not 'zero'"),
        ("peak_memory_bytes", [1], "peak_memory_bytes must be a whole number, not [1]"),
        ("cpu_seconds", {"user": 1}, "cpu_seconds must be a number, not {'user': 1}"),
    ],
)
def test_it_answers_a_finish_with_a_malformed_number_400_and_keeps_the_attempt(
    runner, field, value, detail
):
    response = runner(FINISH, {"status": "succeeded", "exit_code": 0, field: value})

    assert response.status_code == 400
    assert response.json() == {"error": "invalid_request", "detail": detail}
    assert Attempt.objects.get().status == "starting"


def test_it_answers_a_finish_with_an_unknown_status_400(runner):
    response = runner(FINISH, {"status": "done"})

    assert response.status_code == 400
    assert response.json() == {
        "error": "invalid_request",
        "detail": "status must be one of succeeded, failed, timed_out, cancelled",
    }


def test_a_succeeded_run_keeps_what_its_function_returned(runner):
    returned = {"rates": {"EUR": 0.9}, "days": [1, 2]}
    response = runner(
        FINISH, {"status": "succeeded", "return_value": returned, "return_format": "json"}
    )

    assert response.status_code == 200
    run = Run.objects.get()
    assert (run.status, run.return_value, run.return_format) == ("succeeded", returned, "json")
    _, token = make_token("reader", role="viewer")
    detail = APIClient(HTTP_AUTHORIZATION=f"Bearer {token}").get(f"/api/v1/runs/{run.id}").json()
    assert (detail["return_value"], detail["return_format"]) == (returned, "json")


def test_a_run_that_did_not_succeed_keeps_no_return_value(runner):
    runner(FINISH, {"status": "failed", "return_value": "{1, 2}", "return_format": "repr"})

    run = Run.objects.get()
    assert (run.status, run.return_value, run.return_format) == ("failed", None, "")


def test_a_return_value_without_a_format_is_a_repr_as_the_previous_runner_sent_it(runner):
    runner(FINISH, {"status": "succeeded", "return_value": "{'EUR', 'USD'}"})

    run = Run.objects.get()
    assert (run.return_value, run.return_format) == ("{'EUR', 'USD'}", "repr")


def test_what_no_database_stores_in_a_returned_string_is_replaced(runner):
    returned = {"nul\x00key": ["lone \ud800 surrogate"]}
    response = runner(
        FINISH, {"status": "succeeded", "return_value": returned, "return_format": "json"}
    )

    assert response.status_code == 200
    assert Run.objects.get().return_value == {"nul\ufffdkey": ["lone \ufffd surrogate"]}


@pytest.mark.parametrize(
    ("value", "format", "detail"),
    [
        ([1], "pickle", "return_format must be one of json, repr, cut, not 'pickle'"),
        ([1], None, "return_format must be one of json, repr, cut, not None"),
        ([1, 2], "repr", "return_value must be a string when return_format is repr, not a list"),
        (
            ["x" * MAX_RETURN_BYTES],
            "json",
            f"return_value must be at most {MAX_RETURN_BYTES} bytes as JSON text, not "
            f"{MAX_RETURN_BYTES + 4}; cut its text and send return_format cut",
        ),
        (
            "é" * MAX_RETURN_BYTES,
            "cut",
            f"return_value must be at most {MAX_RETURN_BYTES} bytes as JSON text, not "
            f"{2 * MAX_RETURN_BYTES}; cut its text and send return_format cut",
        ),
    ],
)
def test_it_answers_a_return_value_it_cannot_keep_400_and_keeps_the_attempt(
    runner, value, format, detail
):
    response = runner(
        FINISH, {"status": "succeeded", "return_value": value, "return_format": format}
    )

    assert response.status_code == 400
    assert response.json() == {"error": "invalid_request", "detail": detail}
    assert Attempt.objects.get().status == "starting"
    assert Run.objects.get().return_value is None
