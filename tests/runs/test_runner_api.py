"""The runner API's one endpoint without a token, the runtime archive that pods installing at
start download, and every endpoint's answer to a wrong method. (The rest is exercised by every
run the runner makes.)"""

import pytest

from runs.executors.kubernetes.manifests import RUNTIME_URL_PATH
from runs.runtime_bundle import bundle


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
