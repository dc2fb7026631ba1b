"""deploy/kubernetes/: every document validated against the strict schema of the oldest and
newest Kubernetes we support and the API server's own checks, and the files checked against
each other and against what the executor actually does."""

import re
import tomllib
from pathlib import Path

import kubernetes_validate
import pytest
import yaml
from django.conf import settings
from django.core.management import get_commands

from chalkcompute import Image
from runs.executors.kubernetes.config import KubernetesConfig
from runs.executors.kubernetes.dockerfile import plan_image
from tests.kubernetes.apichecks import api_server_errors, restricted_violations
from tests.kubernetes.conftest import NAMESPACE, make_config, make_spec
from tests.kubernetes.test_manifests import NEWEST, OLDEST

REPO = Path(__file__).resolve().parents[2]
DEPLOY = REPO / "deploy" / "kubernetes"
MANIFEST_FILES = sorted(p for p in DEPLOY.glob("*.yaml") if p.name != "kustomization.yaml")
DOCUMENTS = {
    f"{path.name}:{doc['kind']}/{doc['metadata']['name']}": doc
    for path in MANIFEST_FILES
    for doc in yaml.safe_load_all(path.read_text())
    if doc
}
REQUIRED_ENV = {
    "DATABASE_URL",
    "CELERY_BROKER_URL",
    "CHALK_SECRETS_KEY",
    "DJANGO_SECRET_KEY",
    "CHALK_EXECUTOR",
    "CHALK_K8S_NAMESPACE",
    "CHALK_PUBLIC_URL",
}
_API_PATH = re.compile(
    r"^/(?:api/v1|apis/(?P<group>[^/]+)/v1)/namespaces/(?P<namespace>[^/]+)/"
    r"(?P<resource>[^/]+)(?:/(?P<name>[^/]+))?(?P<sub>/log)?$"
)


def _docs(kind: str) -> list[dict]:
    return [doc for doc in DOCUMENTS.values() if doc["kind"] == kind]


def _one(kind: str, name: str) -> dict:
    (doc,) = [d for d in _docs(kind) if d["metadata"]["name"] == name]
    return doc


@pytest.mark.parametrize("version", [OLDEST, NEWEST])
@pytest.mark.parametrize("name", DOCUMENTS)
def test_it_ships_manifests_the_strict_schema_accepts(name, version):
    assert kubernetes_validate.validate(DOCUMENTS[name], version, strict=True) == version


@pytest.mark.parametrize("name", DOCUMENTS)
def test_it_ships_manifests_the_api_server_accepts(name):
    assert api_server_errors(DOCUMENTS[name]) == []


@pytest.mark.parametrize("name", [n for n, d in DOCUMENTS.items() if d["kind"] == "Deployment"])
def test_it_runs_the_server_under_the_restricted_pod_security_standard(name):
    assert restricted_violations(DOCUMENTS[name]["spec"]["template"]["spec"]) == []


def test_it_lists_every_manifest_in_the_kustomization_but_the_example_secret():
    kustomization = yaml.safe_load((DEPLOY / "kustomization.yaml").read_text())
    listed = set(kustomization["resources"])
    assert listed == {p.name for p in MANIFEST_FILES} - {"secret.example.yaml"}


def test_it_keeps_placeholder_values_in_the_example_secret():
    secret = _one("Secret", "chalkweb-secrets")
    assert "CHANGE-ME" in secret["stringData"]["DATABASE_URL"]
    assert secret["stringData"]["CHALK_SECRETS_KEY"] == "CHANGE-ME"
    assert secret["stringData"]["DJANGO_SECRET_KEY"] == "CHANGE-ME"


def test_it_configures_every_server_process_from_the_configmap_and_secret():
    configured = set(_one("ConfigMap", "chalkweb-config")["data"]) | set(
        _one("Secret", "chalkweb-secrets")["stringData"]
    )
    assert REQUIRED_ENV <= configured
    for deployment in _docs("Deployment"):
        pod = deployment["spec"]["template"]["spec"]
        for container in pod.get("initContainers", []) + pod["containers"]:
            assert container["envFrom"] == [
                {"configMapRef": {"name": "chalkweb-config"}},
                {"secretRef": {"name": "chalkweb-secrets"}},
            ]


def test_it_configures_only_kubernetes_settings_the_server_reads():
    config = _one("ConfigMap", "chalkweb-config")["data"]
    names = [name for name in config if name.startswith("CHALK_K8S_")]
    assert names
    assert [name for name in names if not hasattr(settings, name)] == []


def test_it_points_the_executor_at_the_runs_namespace_and_run_account():
    config = _one("ConfigMap", "chalkweb-config")["data"]
    run_account = _one("ServiceAccount", "chalkweb-run")
    assert config["CHALK_EXECUTOR"] == "kubernetes"
    assert config["CHALK_K8S_NAMESPACE"] == KubernetesConfig().namespace
    assert run_account["metadata"]["namespace"] == KubernetesConfig().namespace
    assert run_account["metadata"]["name"] == KubernetesConfig().run_service_account


def test_it_gives_the_run_account_no_token_and_no_binding():
    assert _one("ServiceAccount", "chalkweb-run")["automountServiceAccountToken"] is False
    subjects = [s for b in _docs("RoleBinding") for s in b["subjects"]]
    assert all(s["name"] != "chalkweb-run" for s in subjects)


def test_it_binds_the_executor_role_to_the_server_account():
    binding = _one("RoleBinding", "chalkweb-executor")
    role = _one("Role", binding["roleRef"]["name"])
    (subject,) = binding["subjects"]
    account = _one("ServiceAccount", subject["name"])
    assert role["metadata"]["namespace"] == binding["metadata"]["namespace"] == NAMESPACE
    assert account["metadata"]["namespace"] == subject["namespace"] == "chalkweb"


def test_it_mounts_an_api_token_only_in_the_worker_and_the_watcher():
    mounts = {
        d["metadata"]["name"]: d["spec"]["template"]["spec"]["automountServiceAccountToken"]
        for d in _docs("Deployment")
    }
    assert mounts == {
        "chalkweb-web": False,
        "chalkweb-worker": True,
        "chalkweb-beat": False,
        "chalkweb-watcher": True,
    }


def _rbac_request(request) -> tuple[str, str, str]:
    match = _API_PATH.match(request.path)
    resource = match["resource"] + (match["sub"] or "")
    if request.method == "POST":
        verb = "create"
    elif request.method == "DELETE":
        verb = "delete"
    elif match["name"]:
        verb = "get"
    else:
        verb = "watch" if request.query.get("watch") == "true" else "list"
    return match["group"] or "", resource, verb


def test_it_grants_the_executor_every_call_it_makes(cluster, fake):
    name = cluster.create_attempt(make_spec(), token="t0k3n")
    cluster.create_attempt(make_spec(), token="t0k3n")  # adopts: reads the Job
    fake.container_terminated(name, NAMESPACE, 1)
    fake.set_log(name, NAMESPACE, "bye\n")
    cluster.observe(name)
    cluster.read_log(name)
    listing = cluster.list_attempts()
    list(cluster.watch_attempts(listing.resource_version, timeout_seconds=1))
    cluster.delete(name)
    cluster.create_build(plan_image(Image.debian_slim().spec, make_config(registry="r")))
    role = _one("Role", "chalkweb-executor")
    granted = {
        (group, resource, verb)
        for rule in role["rules"]
        for group in rule["apiGroups"]
        for resource in rule["resources"]
        for verb in rule["verbs"]
    }
    made = {_rbac_request(r) for r in fake.requests}
    assert made - granted == set()
    assert {r.path.split("/namespaces/")[1].split("/")[0] for r in fake.requests} == {NAMESPACE}


def test_it_routes_the_service_to_the_web_pods():
    service = _one("Service", "chalkweb-web")
    web = _one("Deployment", "chalkweb-web")["spec"]["template"]
    assert service["spec"]["selector"].items() <= web["metadata"]["labels"].items()
    ports = {p["name"] for c in web["spec"]["containers"] for p in c.get("ports", [])}
    assert {p["targetPort"] for p in service["spec"]["ports"]} <= ports
    for other in ("chalkweb-worker", "chalkweb-beat", "chalkweb-watcher"):
        labels = _one("Deployment", other)["spec"]["template"]["metadata"]["labels"]
        assert not service["spec"]["selector"].items() <= labels.items()


def test_it_migrates_before_web_and_waits_for_it_everywhere_else():
    commands = {
        d["metadata"]["name"]: [
            c["command"] for c in d["spec"]["template"]["spec"]["initContainers"]
        ]
        for d in _docs("Deployment")
    }
    assert commands["chalkweb-web"] == [["python", "manage.py", "migrate", "--noinput"]]
    assert commands["chalkweb-worker"] == [["python", "manage.py", "migrate", "--check"]]
    assert commands["chalkweb-beat"] == [["python", "manage.py", "migrate", "--check"]]
    assert commands["chalkweb-watcher"] == [["python", "manage.py", "migrate", "--check"]]


def test_it_runs_the_watcher_command_the_server_ships():
    (container,) = _one("Deployment", "chalkweb-watcher")["spec"]["template"]["spec"]["containers"]
    assert container["command"] == ["python", "manage.py", "watch_kubernetes"]
    assert "watch_kubernetes" in get_commands()


def test_it_runs_two_beats():
    assert _one("Deployment", "chalkweb-beat")["spec"]["replicas"] == 2


def test_it_has_the_worker_consume_every_queue_the_settings_route_to():
    (worker,) = _one("Deployment", "chalkweb-worker")["spec"]["template"]["spec"]["containers"]
    (queues,) = [a.split("=", 1)[1] for a in worker["command"] if a.startswith("--queues=")]
    routed = {route["queue"] for route in settings.CELERY_TASK_ROUTES.values()}
    assert set(queues.split(",")) == routed | {settings.CELERY_TASK_DEFAULT_QUEUE}


def test_it_probes_health_with_a_host_django_allows():
    allowed = _one("ConfigMap", "chalkweb-config")["data"]["DJANGO_ALLOWED_HOSTS"].split(",")
    (web,) = _one("Deployment", "chalkweb-web")["spec"]["template"]["spec"]["containers"]
    for probe in (web["readinessProbe"], web["livenessProbe"]):
        assert probe["httpGet"]["path"] == "/healthz"
        (host,) = [h["value"] for h in probe["httpGet"]["httpHeaders"] if h["name"] == "Host"]
        assert host in allowed


def test_it_copies_every_package_into_the_server_image():
    dockerfile = (DEPLOY / "Dockerfile").read_text()
    pyproject = tomllib.loads((REPO / "pyproject.toml").read_text())
    copied = set(re.findall(r"^COPY (\w+) \./\1$", dockerfile, re.MULTILINE))
    packages = {
        p.rstrip("*") for p in pyproject["tool"]["setuptools"]["packages"]["find"]["include"]
    }
    assert packages <= copied
    assert {"templates", "static"} <= copied  # settings read them beside the code


def test_it_runs_the_server_image_as_the_user_the_manifests_expect():
    dockerfile = (DEPLOY / "Dockerfile").read_text()
    assert re.search(r"^FROM python:3\.11-slim-\w+$", dockerfile, re.MULTILINE)
    assert "\nUSER 1000:1000\n" in dockerfile
    for deployment in _docs("Deployment"):
        assert deployment["spec"]["template"]["spec"]["securityContext"]["runAsUser"] == 1000
