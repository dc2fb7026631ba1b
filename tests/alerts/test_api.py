"""/api/v1/channels: list (read), create (the secret once) and delete (admin), as on the
console."""

import pytest
from rest_framework.test import APIClient

from alerts.models import Channel
from tests.personas import make_token
from tests.runs.support import deploy

pytestmark = pytest.mark.django_db


def client_with(scopes, role="admin") -> APIClient:
    _, token = make_token("t", username=f"u-{role}", role=role, scopes=scopes)
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Bearer {token}")
    return client


def test_create_list_delete():
    deploy("nightly-report", "pass")
    api = client_with(["read", "admin"])
    body = {
        "name": "ops-hook",
        "kind": "webhook",
        "url": "https://hooks.example.com/x?token=abc",
        "functions": ["nightly-report"],
    }
    created = api.post("/api/v1/channels", body, format="json")
    assert created.status_code == 201, created.json()
    data = created.json()
    assert data["url"] == "https://hooks.example.com"
    assert data["functions"] == ["nightly-report"] and data["is_default"] is False
    assert len(data["secret"]) > 30

    listed = api.get("/api/v1/channels").json()
    assert [c["name"] for c in listed["results"]] == ["ops-hook"]
    assert "secret" not in listed["results"][0]
    assert "abc" not in str(listed)

    again = api.post("/api/v1/channels", body, format="json")
    assert again.status_code == 409 and again.json()["error"] == "conflict"

    assert api.delete(f"/api/v1/channels/{data['id']}").status_code == 204
    assert api.delete(f"/api/v1/channels/{data['id']}").status_code == 404
    assert not Channel.objects.exists()


def test_bad_bodies_are_refused():
    api = client_with(["read", "admin"])
    for body in (
        {"name": "x", "kind": "apprise", "url": "bogus://x"},
        {"name": "x", "kind": "webhook", "url": "https://a.example.com", "is_default": "yes"},
        {"name": "x", "kind": "webhook", "url": "https://a.example.com", "functions": ["no"]},
        {"name": "x", "kind": "webhook", "url": "https://a.example.com", "extra": 1},
    ):
        assert api.post("/api/v1/channels", body, format="json").status_code == 400, body


def test_the_read_scope_may_list_but_not_create():
    api = client_with(["read", "run"])
    assert api.get("/api/v1/channels").status_code == 200
    body = {"name": "x", "kind": "webhook", "url": "https://a.example.com"}
    assert api.post("/api/v1/channels", body, format="json").status_code == 403
    operator = client_with(["read", "run"], role="operator")
    refused = operator.post("/api/v1/channels", body, format="json")
    assert refused.status_code == 403 and "admin" in refused.json()["detail"]
    viewer = client_with(["read"], role="viewer")
    assert viewer.post("/api/v1/channels", body, format="json").status_code == 403
