"""Every manifest the executor produces, checked as the API server would check it: the schema
of the oldest and newest Kubernetes we support (strict: no unknown fields), then the rules
only the API server's validation and admission apply."""

import ast
import base64
import copy
import json
from pathlib import Path

import kubernetes_validate
import pytest

from chalkcompute import Image
from runs.executors.kubernetes import dockerfile
from runs.executors.kubernetes.config import DEFAULT_GPU_NODE_SELECTORS
from runs.executors.kubernetes.manifests import (
    UnsupportedSpecError,
    attempt_job,
    attempt_secret,
    job_name,
)
from tests.kubernetes.apichecks import api_server_errors, name_errors, restricted_violations
from tests.kubernetes.support import make_config, make_spec

# Oldest: 1.30 is the first with `appArmorProfile` as a field (the BuildKit Job needs it) and
# has the pod failure policy and DisruptionTarget conditions on by default. Newest: the last
# schema kubernetes-validate 1.37.0 ships.
OLDEST, NEWEST = "1.30", "1.37"
EXECUTOR_PACKAGE = Path(__file__).resolve().parents[2] / "runs" / "executors" / "kubernetes"
JOB_UID = "5d3a4b0e-7c1f-4a8e-9a51-2f7d1c0b9e6a"
IMAGE_HASH = "c0ffee" * 10 + "abcd"


def _install_spec() -> dict:
    return (
        Image.debian_slim("3.12")
        .pip_install("requests==2.32.3", "numpy>=2")
        .run_commands("python -c 'import requests'")
        .env({"GREETING": "hello world"})
        .spec
    )


def produced_manifests() -> dict[str, dict]:
    config = make_config()
    registry = make_config(registry="registry.example.com/chalkweb", registry_secret="regcred")
    plan = dockerfile.plan_image(Image.debian_slim().apt_install("curl").spec, registry)
    gpu_jobs = {
        f"job with {gpu_type}": attempt_job(make_spec(gpu=f"{gpu_type}:2"), config)
        for gpu_type in DEFAULT_GPU_NODE_SELECTORS
    }
    return {
        "job": attempt_job(make_spec(), config),
        "job without resources or timeout": attempt_job(
            make_spec(cpu=None, memory=None, timeout_seconds=None), config
        ),
        "job with a fractional timeout": attempt_job(make_spec(timeout_seconds=0.5), config),
        "job made ahead of its slot": attempt_job(
            make_spec(starts_at="2026-03-01T12:01:00Z", wait_seconds=29.6), config
        ),
        "job with a long function name": attempt_job(
            make_spec(function_name="f" * 63, run_id=2**63 - 1, attempt_number=999), config
        ),
        **gpu_jobs,
        "job installing its image at start": attempt_job(
            make_spec(install_spec_at_start=True, image_spec=_install_spec()), config
        ),
        "job with pull secret and extra labels": attempt_job(
            make_spec(),
            make_config(registry_secret="regcred", extra_labels={"team.example.com/cost": "ml"}),
        ),
        "token secret": attempt_secret(make_spec(), config, token="s3cr3t", job_uid=JOB_UID),
        "build job": dockerfile.build_job(plan.image_hash, plan.image_ref, registry),
        "build job for an insecure registry without credentials": dockerfile.build_job(
            IMAGE_HASH, "registry.local:5000/chalkweb-fn:x", make_config(registry_insecure=True)
        ),
        "build configmap": dockerfile.build_configmap(
            plan.image_hash, plan.dockerfile, registry, job_uid=JOB_UID
        ),
    }


MANIFESTS = produced_manifests()


@pytest.mark.parametrize("version", [OLDEST, NEWEST])
@pytest.mark.parametrize("name", MANIFESTS)
def test_it_produces_manifests_the_strict_schema_accepts(name, version):
    assert kubernetes_validate.validate(MANIFESTS[name], version, strict=True) == version


@pytest.mark.parametrize("name", MANIFESTS)
def test_it_produces_manifests_the_api_server_accepts(name):
    assert api_server_errors(MANIFESTS[name]) == []


def test_it_validates_in_strict_mode_so_an_unknown_field_fails():
    job = attempt_job(make_spec(), make_config())
    job["spec"]["template"]["spec"]["containers"][0]["memoryLimit"] = "1Gi"
    with pytest.raises(kubernetes_validate.ValidationError):
        kubernetes_validate.validate(job, NEWEST, strict=True)


def test_it_catches_what_only_the_api_server_checks():
    job = attempt_job(make_spec(), make_config())
    job["metadata"]["name"] = "Refresh_Rates"
    job["metadata"]["labels"]["chalkweb.dev/function"] = "x" * 64
    job["spec"]["template"]["spec"]["restartPolicy"] = "OnFailure"
    job["spec"]["template"]["spec"]["containers"][0]["resources"]["limits"]["cpu"] = "1 core"
    errors = "\n".join(api_server_errors(job))
    assert "'Refresh_Rates' is not a DNS label" in errors
    assert "not a valid label value" in errors
    assert "restartPolicy Never" in errors
    assert "'1 core' is not a Kubernetes quantity" in errors


def test_it_catches_a_build_configmap_the_api_server_would_refuse():
    configmap = copy.deepcopy(MANIFESTS["build configmap"])
    configmap["binaryData"]["Dockerfile"] = base64.b64encode(b"\0" * 1024 * 1024).decode()
    errors = "\n".join(api_server_errors(configmap))
    assert "keys ['Dockerfile'] are in both" in errors
    assert "over 1 MiB" in errors


@pytest.mark.parametrize(
    "name",
    [n for n in MANIFESTS if MANIFESTS[n]["kind"] == "Job" and "build" not in n],
)
def test_it_runs_attempts_under_the_restricted_pod_security_standard(name):
    assert restricted_violations(MANIFESTS[name]["spec"]["template"]["spec"]) == []


def test_it_names_jobs_from_the_run_and_attempt():
    assert job_name(41, 2, "refresh-exchange-rates") == "chalk-refresh-exchange-rates-r41-a2"


def test_it_cuts_long_function_names_and_keeps_the_run_and_attempt():
    name = job_name(2**63 - 1, 999, "a" * 63)
    assert len(name) == 63
    assert name.endswith(f"-r{2**63 - 1}-a999")
    assert job_name(7, 1, "a" * 63) != job_name(8, 1, "a" * 63)


def test_it_never_ends_a_cut_name_on_a_hyphen():
    room = 63 - len("chalk-") - len(f"-r{2**63 - 1}-a1")
    name = job_name(2**63 - 1, 1, "a" * (room - 1) + "-tail")
    assert name == "chalk-" + "a" * (room - 1) + f"-r{2**63 - 1}-a1"
    assert name_errors(name, "job") == []


def test_it_sets_the_retry_and_cleanup_policy_on_the_job():
    spec = attempt_job(make_spec(timeout_seconds=600), make_config())["spec"]
    assert spec["backoffLimit"] == 0
    assert spec["activeDeadlineSeconds"] == 600 + make_config().deadline_margin_seconds
    assert spec["ttlSecondsAfterFinished"] == 3600
    assert spec["template"]["spec"]["restartPolicy"] == "Never"


def test_a_job_made_ahead_of_its_slot_has_a_deadline_that_covers_its_wait():
    job = attempt_job(
        make_spec(timeout_seconds=600, starts_at="2026-03-01T12:01:00Z", wait_seconds=29.6),
        make_config(),
    )
    assert job["spec"]["activeDeadlineSeconds"] == 30 + 600 + make_config().deadline_margin_seconds
    assert job["metadata"]["annotations"]["chalkweb.dev/starts-at"] == "2026-03-01T12:01:00Z"
    no_timeout = attempt_job(make_spec(timeout_seconds=None, wait_seconds=29.6), make_config())
    assert "activeDeadlineSeconds" not in no_timeout["spec"]


def test_it_labels_the_job_and_its_pods_with_function_run_and_attempt():
    job = attempt_job(make_spec(run_id=41, attempt_number=3, attempt_id=97), make_config())
    for labels in (job["metadata"]["labels"], job["spec"]["template"]["metadata"]["labels"]):
        assert labels["chalkweb.dev/function"] == "refresh-exchange-rates"
        assert labels["chalkweb.dev/run"] == "41"
        assert labels["chalkweb.dev/attempt"] == "3"
        assert labels["chalkweb.dev/attempt-id"] == "97"


def test_it_requests_what_it_limits():
    container = attempt_job(make_spec(cpu="500m", memory="2Gi"), make_config())["spec"]["template"][
        "spec"
    ]["containers"][0]
    assert container["resources"] == {
        "requests": {"cpu": "500m", "memory": "2Gi"},
        "limits": {"cpu": "500m", "memory": "2Gi"},
    }


def test_it_places_gpu_runs_with_the_configured_selector_and_toleration():
    pod = attempt_job(make_spec(gpu="nvidia-l4:2"), make_config())["spec"]["template"]["spec"]
    assert pod["containers"][0]["resources"]["limits"]["nvidia.com/gpu"] == "2"
    assert pod["nodeSelector"] == {"cloud.google.com/gke-accelerator": "nvidia-l4"}
    assert pod["tolerations"] == [
        {"key": "nvidia.com/gpu", "operator": "Exists", "effect": "NoSchedule"}
    ]


def test_it_refuses_a_gpu_type_the_cluster_has_no_placement_for():
    config = make_config(gpu_node_selectors={"nvidia-t4": DEFAULT_GPU_NODE_SELECTORS["nvidia-t4"]})
    with pytest.raises(UnsupportedSpecError, match="'nvidia-h100' has no node selector"):
        attempt_job(make_spec(gpu="nvidia-h100"), config)


def test_it_gives_runs_no_api_token_and_no_root():
    pod = attempt_job(make_spec(), make_config())["spec"]["template"]["spec"]
    assert pod["serviceAccountName"] == "chalkweb-run"
    assert pod["automountServiceAccountToken"] is False
    assert pod["securityContext"]["runAsNonRoot"] is True
    assert pod["securityContext"]["runAsUser"] == 1000


def test_it_runs_the_runner_with_the_attempt_environment():
    container = attempt_job(make_spec(attempt_id=97), make_config())["spec"]["template"]["spec"][
        "containers"
    ][0]
    env = {e["name"]: e for e in container["env"]}
    assert container["command"] == ["python", "-m", "chalkcompute.runtime"]
    assert env["CHALK_IN_RUN"]["value"] == "1"
    assert env["CHALK_ATTEMPT_ID"]["value"] == "97"
    assert env["CHALK_SERVER_URL"]["value"] == "http://chalkweb-web.chalkweb.svc.cluster.local"
    assert env["CHALK_ATTEMPT_TOKEN"]["valueFrom"]["secretKeyRef"] == {
        "name": "chalk-refresh-exchange-rates-r41-a1",
        "key": "token",
        "optional": False,
    }


def test_it_keeps_the_token_out_of_the_job():
    job = attempt_job(make_spec(), make_config())
    secret = attempt_secret(make_spec(), make_config(), token="s3cr3t-token", job_uid=JOB_UID)
    assert "s3cr3t-token" not in json.dumps(job)
    assert secret["stringData"] == {"token": "s3cr3t-token"}
    assert secret["metadata"]["ownerReferences"] == [
        {
            "apiVersion": "batch/v1",
            "kind": "Job",
            "name": job["metadata"]["name"],
            "uid": JOB_UID,
            "blockOwnerDeletion": False,
        }
    ]


def test_it_marks_install_at_start_runs_for_the_console():
    job = attempt_job(
        make_spec(install_spec_at_start=True, image_spec=_install_spec()), make_config()
    )
    assert job["metadata"]["annotations"]["chalkweb.dev/image-mode"] == "install-at-start"
    assert job["spec"]["template"]["spec"]["containers"][0]["command"][:2] == ["/bin/sh", "-c"]


# The Django side (executor, builds, reconcile) records what these return on the models.
DJANGO_SIDE = {"executor.py", "builds.py", "reconcile.py", "watcher.py"}


def test_it_imports_neither_django_nor_the_models():
    for path in sorted(p for p in EXECUTOR_PACKAGE.glob("*.py") if p.name not in DJANGO_SIDE):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Import):
                modules = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom):
                modules = [node.module or ""]
            else:
                continue
            for module in modules:
                assert not module.startswith(("django", "runs.models", "scheduling")), (
                    f"{path.name} imports {module}"
                )
