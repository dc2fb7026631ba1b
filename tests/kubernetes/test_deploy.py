"""deploy/kubernetes/: every document validated against the strict schema of the oldest and
newest Kubernetes we support and the API server's own checks, and the files checked against
each other and against what the executor actually does."""

import copy
import ipaddress
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
from runs.executors.kubernetes.dockerfile import build_job, plan_image
from runs.executors.kubernetes.manifests import attempt_job
from tests.kubernetes.apichecks import api_server_errors, restricted_violations
from tests.kubernetes.support import NAMESPACE, make_config, make_spec
from tests.kubernetes.test_manifests import NEWEST, OLDEST

REPO = Path(__file__).resolve().parents[2]
DEPLOY = REPO / "deploy" / "kubernetes"
MANIFEST_FILES = sorted(p for p in DEPLOY.glob("*.yaml") if p.name != "kustomization.yaml")
# Validated like the rest, applied by hand when they apply (see kustomization.yaml).
NOT_KUSTOMIZED = {"secret.example.yaml", "networkpolicy-install-at-start.yaml"}
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


def test_it_lists_every_manifest_in_the_kustomization_but_the_optional_ones():
    kustomization = yaml.safe_load((DEPLOY / "kustomization.yaml").read_text())
    listed = set(kustomization["resources"])
    assert listed == {p.name for p in MANIFEST_FILES} - NOT_KUSTOMIZED


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


# --- the runs namespace's network ------------------------------------------------------------

METADATA = ipaddress.ip_address("169.254.169.254")


def _policies(*, optional: bool = False) -> dict[str, dict]:
    return {
        name: doc
        for name, doc in DOCUMENTS.items()
        if doc["kind"] == "NetworkPolicy" and (optional or name.split(":")[0] not in NOT_KUSTOMIZED)
    }


def _selecting(labels: dict[str, str], *, optional: bool = False) -> dict[str, dict]:
    """The policies that apply to a pod of the runs namespace with these labels."""
    selected = {}
    for policy in _policies(optional=optional).values():
        selector = policy["spec"]["podSelector"]
        assert set(selector) <= {"matchLabels"}, "only matchLabels: what the test can read"
        if selector.get("matchLabels", {}).items() <= labels.items():
            selected[policy["metadata"]["name"]] = policy
    return selected


def _egress(policies: dict[str, dict]) -> list[dict]:
    return [rule for policy in policies.values() for rule in policy["spec"].get("egress", [])]


def _reaches(rules: list[dict], address: str, port: int) -> bool:
    """Whether an ipBlock rule lets the pod reach `address` on TCP `port`."""
    ip = ipaddress.ip_address(address)
    for rule in rules:
        ports = {p["port"] for p in rule.get("ports") or [] if p["protocol"] == "TCP"}
        if rule.get("ports") and port not in ports:
            continue
        for peer in rule.get("to") or [{}]:
            block = peer.get("ipBlock")
            if block is None:
                continue
            network = ipaddress.ip_network(block["cidr"])
            if ip.version == network.version and ip in network:
                if not any(ip in ipaddress.ip_network(e) for e in block.get("except", [])):
                    return True
    return False


RUN_POD = attempt_job(make_spec(), KubernetesConfig())["spec"]["template"]["metadata"]["labels"]
BUILD_POD = build_job("ab" * 32, "r/chalkweb-fn:x", make_config(registry="r"))["spec"]["template"][
    "metadata"
]["labels"]


def test_it_denies_every_pod_of_the_runs_namespace_all_traffic_but_what_it_allows():
    (deny,) = [p for p in _policies().values() if p["spec"]["podSelector"] == {}]
    assert deny["metadata"]["namespace"] == KubernetesConfig().namespace
    assert deny["spec"]["policyTypes"] == ["Ingress", "Egress"]
    assert all("ingress" not in p["spec"] for p in _policies(optional=True).values())
    for policy in _policies(optional=True).values():
        assert policy["metadata"]["namespace"] == KubernetesConfig().namespace


def test_it_lets_runs_reach_dns_and_the_runner_api_only():
    policies = _selecting(RUN_POD)
    dns, runner_api = _egress(policies)
    web = _one("Deployment", "chalkweb-web")
    (web_container,) = web["spec"]["template"]["spec"]["containers"]

    assert set(policies) == {"chalkweb-runs-default-deny", "chalkweb-run-egress"}
    assert dns["ports"] == [{"protocol": "UDP", "port": 53}, {"protocol": "TCP", "port": 53}]
    (dns_peer,) = dns["to"]
    assert dns_peer["podSelector"] == {"matchLabels": {"k8s-app": "kube-dns"}}
    (api_peer,) = runner_api["to"]
    assert api_peer["namespaceSelector"] == {
        "matchLabels": {"kubernetes.io/metadata.name": web["metadata"]["namespace"]}
    }
    web_labels = web["spec"]["template"]["metadata"]["labels"]
    assert api_peer["podSelector"]["matchLabels"].items() <= web_labels.items()
    assert runner_api["ports"] == [
        {"protocol": "TCP", "port": port["containerPort"]} for port in web_container["ports"]
    ]
    for other in ("chalkweb-worker", "chalkweb-beat", "chalkweb-watcher"):
        labels = _one("Deployment", other)["spec"]["template"]["metadata"]["labels"]
        assert not api_peer["podSelector"]["matchLabels"].items() <= labels.items()
    for address in (str(METADATA), "10.0.0.5", "8.8.8.8", "2001:db8::1"):
        assert not _reaches(_egress(policies), address, 443)


def test_it_lets_runs_installing_at_start_reach_package_indexes_and_still_not_metadata():
    rules = _egress(_selecting(RUN_POD, optional=True))

    assert _reaches(rules, "151.101.0.223", 443)  # pypi.org
    assert not _reaches(rules, "151.101.0.223", 22)
    for private in (str(METADATA), "10.96.0.1", "172.18.0.2", "192.168.1.1", "fd00:ec2::254"):
        assert not _reaches(rules, private, 443)


def test_it_lets_builds_reach_registries_and_indexes_but_not_the_metadata_address():
    policies = _selecting(BUILD_POD, optional=True)
    rules = _egress(policies)

    assert set(policies) == {"chalkweb-runs-default-deny", "chalkweb-build-egress"}
    assert _reaches(rules, "172.18.0.2", 5000)  # kind's local registry (see README.md)
    assert _reaches(rules, "151.101.0.223", 443)
    assert not _reaches(rules, str(METADATA), 80)
    assert not _reaches(rules, "fd00:ec2::254", 80)
    assert "chalkweb-run-egress" not in policies


def test_it_catches_a_network_policy_the_api_server_would_refuse():
    policy = copy.deepcopy(_one("NetworkPolicy", "chalkweb-build-egress"))
    policy["spec"]["egress"][1]["to"][0]["ipBlock"]["except"] = ["10.0.0.0/8", "0.0.0.0/0"]
    policy["spec"]["egress"][0]["ports"][0]["port"] = 0

    errors = "\n".join(api_server_errors(policy))
    assert "except 0.0.0.0/0 is not inside 0.0.0.0/0" in errors
    assert "port 0 is out of range" in errors
