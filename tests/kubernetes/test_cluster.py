"""JobCluster over HTTP with the official client, against the fake API server."""

import base64
import json
from datetime import UTC, datetime

import pytest
from kubernetes.client.exceptions import ApiException

from chalkcompute import Image
from runs.executors.kubernetes.cluster import JobNameTakenError
from runs.executors.kubernetes.dockerfile import plan_image
from runs.executors.kubernetes.manifests import attempt_job
from runs.executors.kubernetes.outcomes import classify
from tests.kubernetes.support import NAMESPACE, make_config, make_spec

JOBS = f"/apis/batch/v1/namespaces/{NAMESPACE}/jobs"
SECRETS = f"/api/v1/namespaces/{NAMESPACE}/secrets"


def _posts(fake, path):
    return [r for r in fake.requests if r.method == "POST" and r.path == path]


def test_it_creates_the_job_and_secret_with_strict_field_validation(cluster, fake):
    cluster.create_attempt(make_spec(), token="t0k3n")
    (job_post,) = _posts(fake, JOBS)
    (secret_post,) = _posts(fake, SECRETS)
    assert job_post.query == {"fieldValidation": "Strict"}
    assert secret_post.query == {"fieldValidation": "Strict"}


def test_it_sends_the_job_exactly_as_built(cluster, fake, config):
    cluster.create_attempt(make_spec(), token="t0k3n")
    (job_post,) = _posts(fake, JOBS)
    assert job_post.body == attempt_job(make_spec(), config)


def test_it_puts_the_token_in_a_secret_owned_by_the_job(cluster, fake):
    name = cluster.create_attempt(make_spec(), token="t0k3n")
    job = fake.get("jobs", NAMESPACE, name)
    secret = fake.get("secrets", NAMESPACE, name)
    assert base64.b64decode(secret["data"]["token"]).decode() == "t0k3n"
    assert [(r["kind"], r["name"], r["uid"]) for r in secret["metadata"]["ownerReferences"]] == [
        ("Job", name, job["metadata"]["uid"])
    ]
    assert "t0k3n" not in json.dumps(job)


def test_it_adopts_its_own_job_when_a_create_answers_409(cluster, fake):
    first = cluster.create_attempt(make_spec(), token="t0k3n")
    again = cluster.create_attempt(make_spec(), token="t0k3n")
    assert again == first
    assert [r.path for r in fake.requests if r.method == "GET" and r.path == f"{JOBS}/{first}"]
    assert len(fake.objects("jobs")) == 1
    assert len(fake.objects("secrets")) == 1


def test_it_refuses_a_job_of_another_attempt_under_the_same_name(cluster, fake, config):
    stranger = attempt_job(make_spec(attempt_id=5000), config)
    fake.put_job(stranger, NAMESPACE)
    with pytest.raises(JobNameTakenError) as caught:
        cluster.create_attempt(make_spec(attempt_id=97), token="t0k3n")
    assert str(caught.value).startswith(
        f"Job {stranger['metadata']['name']} already exists in namespace {NAMESPACE} but its "
        "labels ("
    )
    assert "chalkweb.dev/attempt-id=5000" in str(caught.value)
    assert fake.objects("secrets") == []


def test_it_takes_the_job_back_when_its_secret_cannot_be_created(cluster, fake):
    fake.forbidden.add("secrets")
    with pytest.raises(ApiException) as caught:
        cluster.create_attempt(make_spec(), token="t0k3n")
    assert caught.value.status == 403
    assert fake.objects("jobs") == []
    assert fake.objects("pods") == []


def test_it_cancels_by_deleting_the_job_with_its_pods_and_secret(cluster, fake):
    name = cluster.create_attempt(make_spec(), token="t0k3n")
    fake.container_running(name, NAMESPACE)
    cluster.delete(name)
    (delete,) = [r for r in fake.requests if r.method == "DELETE"]
    assert delete.path == f"{JOBS}/{name}"
    assert delete.query == {"propagationPolicy": "Background"}
    assert fake.objects("jobs") == []
    assert fake.objects("pods") == []
    assert fake.objects("secrets") == []


def test_it_treats_a_job_already_gone_as_deleted(cluster, fake):
    cluster.delete("chalk-gone-r1-a1")
    assert fake.requests[-1].method == "DELETE"


def test_it_observes_the_job_and_its_pods(cluster, fake):
    name = cluster.create_attempt(make_spec(), token="t0k3n")
    fake.container_running(name, NAMESPACE)
    job, pods = cluster.observe(name)
    assert job["metadata"]["name"] == name
    assert [p["status"]["phase"] for p in pods] == ["Running"]
    assert pods[0]["metadata"]["labels"]["chalkweb.dev/attempt-id"] == "97"


def test_it_observes_no_job_once_it_is_gone(cluster, fake):
    name = cluster.create_attempt(make_spec(), token="t0k3n")
    fake.delete_by_hand(name, NAMESPACE)
    assert cluster.observe(name) == (None, [])


def test_it_reads_the_pod_log_of_a_runner_that_died(cluster, fake):
    name = cluster.create_attempt(make_spec(), token="t0k3n")
    fake.container_terminated(name, NAMESPACE, 1)
    fake.set_log(name, NAMESPACE, "starting\nTraceback (most recent call last):\nKeyError: 'x'\n")
    assert cluster.read_log(name) == "starting\nTraceback (most recent call last):\nKeyError: 'x'\n"
    (read,) = [r for r in fake.requests if r.path.endswith("/log")]
    assert read.query == {"tailLines": "2000", "limitBytes": str(1024 * 1024)}


def test_it_reads_no_log_from_a_container_that_never_started(cluster, fake):
    name = cluster.create_attempt(make_spec(), token="t0k3n")
    fake.container_waiting(name, NAMESPACE, "ImagePullBackOff", "back-off pulling image")
    assert cluster.read_log(name) == ""


def test_it_reads_no_log_when_the_job_has_no_pod(cluster, fake):
    name = cluster.create_attempt(make_spec(), token="t0k3n")
    fake.delete_by_hand(name, NAMESPACE)
    assert cluster.read_log(name) == ""


def test_it_lists_every_attempt_with_its_pods(cluster, fake):
    first = cluster.create_attempt(make_spec(run_id=1), token="a")
    second = cluster.create_attempt(make_spec(run_id=2), token="b")
    listing = cluster.list_attempts()
    assert sorted(j["metadata"]["name"] for j in listing.jobs) == sorted([first, second])
    assert {name: len(pods) for name, pods in listing.pods_by_job.items()} == {
        first: 1,
        second: 1,
    }
    newest = max(int(j["metadata"]["resourceVersion"]) for j in fake.objects("jobs"))
    assert int(listing.resource_version) >= newest


def test_it_watches_attempt_jobs_with_a_timeout_and_bookmarks(cluster, fake):
    since = cluster.list_attempts().resource_version
    name = cluster.create_attempt(make_spec(), token="t0k3n")
    events = list(cluster.watch_attempts(since, timeout_seconds=1))
    assert [(e["type"], e["object"]["metadata"].get("name")) for e in events] == [
        ("ADDED", name),
        ("MODIFIED", name),
        ("BOOKMARK", None),
    ]
    (watch,) = [r for r in fake.requests if r.query.get("watch") == "true"]
    assert watch.query["timeoutSeconds"] == "1"
    assert watch.query["allowWatchBookmarks"] == "true"
    assert watch.query["resourceVersion"] == since
    assert events[-1]["resourceVersion"] >= events[-2]["resourceVersion"]


def test_it_relists_when_the_watch_reports_410_gone(cluster, fake):
    first = cluster.create_attempt(make_spec(run_id=1), token="a")
    stale = cluster.list_attempts().resource_version
    second = cluster.create_attempt(make_spec(run_id=2), token="b")
    fake.compact()
    events = list(cluster.watch_attempts(stale, timeout_seconds=2))
    relisted = events[0]
    assert relisted["type"] == "RELISTED"
    assert sorted(j["metadata"]["name"] for j in relisted["listing"].jobs) == sorted(
        [first, second]
    )
    watches = [r.query["resourceVersion"] for r in fake.requests if r.query.get("watch")]
    assert watches == [stale, relisted["resourceVersion"]]


def test_it_relists_when_the_watch_request_itself_answers_410(cluster, fake):
    name = cluster.create_attempt(make_spec(), token="a")
    fake.compact()
    fake.gone_as_http_status = True
    events = list(cluster.watch_attempts("1", timeout_seconds=2))
    assert events[0]["type"] == "RELISTED"
    assert [j["metadata"]["name"] for j in events[0]["listing"].jobs] == [name]


def test_it_raises_a_second_410_instead_of_relisting_in_a_loop(cluster, fake):
    cluster.create_attempt(make_spec(), token="a")
    fake.compacted_rv = 10**9  # even a fresh list's version is too old
    events = cluster.watch_attempts("1", timeout_seconds=5)
    assert next(events)["type"] == "RELISTED"
    with pytest.raises(ApiException) as caught:
        next(events)
    assert caught.value.status == 410
    assert len([r for r in fake.requests if r.query.get("watch")]) == 2


def test_it_builds_an_image_from_a_configmap_owned_by_the_build_job(fake, cluster):
    config = make_config(registry="registry.example.com/chalkweb")
    plan = plan_image(Image.debian_slim().pip_install("requests").spec, config)
    name = cluster.create_build(plan)
    job = fake.get("jobs", NAMESPACE, name)
    configmap = fake.get("configmaps", NAMESPACE, name)
    assert name == plan.build_name
    assert configmap["data"]["Dockerfile"] == plan.dockerfile
    assert configmap["metadata"]["ownerReferences"][0]["uid"] == job["metadata"]["uid"]
    assert cluster.create_build(plan) == name  # a build of the same hash is adopted


def test_it_reports_a_failed_build_and_its_log_like_a_run(fake, cluster, config):
    plan = plan_image(
        Image.debian_slim().pip_install("no-such-pkg").spec, make_config(registry="r")
    )
    created_at = datetime.now(UTC)
    name = cluster.create_build(plan)
    fake.container_terminated(name, NAMESPACE, 1)
    fake.set_log(name, NAMESPACE, "#5 ERROR: No matching distribution found for no-such-pkg\n")
    job, pods = cluster.observe(name)
    outcome = classify(job, pods, now=datetime.now(UTC), created_at=created_at, config=config)
    assert (outcome.status, outcome.exit_code) == ("failed", 1)
    assert "No matching distribution" in cluster.read_log(name)
