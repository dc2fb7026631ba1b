"""The objects the Kubernetes executor creates for one attempt, as plain dicts in the API's
JSON shape: a `batch/v1` Job that runs `python -m chalkcompute.runtime`, and a Secret, owned by
that Job, that carries the attempt's token.

Pure functions: no Django, no API calls. `cluster.JobCluster` sends what they build.
"""

import math
import re
import shlex
from dataclasses import dataclass, field
from typing import Any

from chalkcompute.image import Image, ImageStep
from chalkcompute.quantities import parse_cpu, parse_gpu, parse_memory
from chalkcompute.runtime import protocol
from runs.executors.kubernetes.config import KubernetesConfig
from sdk import runtime_bundle

MAX_NAME = 63  # a DNS label: Job names also become the pods' `job-name` label value

LABEL_MANAGED_BY = "app.kubernetes.io/managed-by"
LABEL_COMPONENT = "app.kubernetes.io/component"
LABEL_FUNCTION = "chalkweb.dev/function"
LABEL_RUN = "chalkweb.dev/run"
LABEL_ATTEMPT = "chalkweb.dev/attempt"
LABEL_ATTEMPT_ID = "chalkweb.dev/attempt-id"
LABEL_IMAGE = "chalkweb.dev/image"
# Set by the Job controller on every pod it creates (Kubernetes 1.27+).
LABEL_JOB_NAME = "batch.kubernetes.io/job-name"
ANNOTATION_IMAGE_MODE = "chalkweb.dev/image-mode"
# When the runner calls the function (RFC 3339, UTC): a Job made ahead of its slot has a pod
# that waits for it, and `kubectl get job -o yaml` says what for.
ANNOTATION_STARTS_AT = "chalkweb.dev/starts-at"
MANAGED_BY = "chalkweb"
COMPONENT_RUN = "run"
COMPONENT_BUILD = "image-build"
# Selects every attempt Job this executor made, for the watch and the periodic full list.
RUN_SELECTOR = f"{LABEL_MANAGED_BY}={MANAGED_BY},{LABEL_COMPONENT}={COMPONENT_RUN}"

RUN_CONTAINER = "run"
TOKEN_KEY = "token"
RUNNER_COMMAND = ["python", "-m", "chalkcompute.runtime"]
GPU_RESOURCE = "nvidia.com/gpu"
# The runtime's images create this user; runs never get root (see `run_security_context`).
RUN_UID = 1000
# /tmp because the run is not root; $TMPDIR first, as every tool that makes scratch files does.
INSTALL_VENV = "${TMPDIR:-/tmp}/chalk-venv"
RUNTIME_URL_PATH = protocol.API_PATH + protocol.RUNTIME_ARCHIVE
INSTALL_AT_START_NOTICE = (
    "No image registry is configured, so this run installs its image spec as it starts "
    "(pip and run_commands, no apt_install); every run pays for the install."
)

_NOT_IN_DNS_LABEL = re.compile(r"[^a-z0-9-]+")


class UnsupportedSpecError(ValueError):
    """The attempt asks for something this cluster configuration cannot give it."""


@dataclass(frozen=True)
class AttemptJobSpec:
    run_id: int
    attempt_number: int
    attempt_id: int  # the Attempt row's id: the runner API scopes the token to it
    function_name: str
    image_ref: str  # from `dockerfile.plan_image`: a built tag, or the base image
    server_url: str  # where the runner reaches the Chalkweb server from inside the cluster
    cpu: str | None = None
    memory: str | None = None
    gpu: str | None = None  # "nvidia-l4" or "nvidia-l4:2"
    timeout_seconds: float | None = None
    install_spec_at_start: bool = False
    image_spec: dict[str, Any] = field(default_factory=dict)
    # When the runner calls the function, and how long after the Job's creation that is: a
    # scheduled attempt's Job is made ahead of its slot (CHALK_K8S_LOOKAHEAD_SECONDS), and its
    # runner waits for it in the pod. The wait counts toward the Job's deadline.
    starts_at: str | None = None  # RFC 3339, UTC
    wait_seconds: float = 0.0


def job_name(run_id: int, attempt_number: int, function_name: str) -> str:
    """`chalk-<function>-r<run>-a<attempt>`, at most 63 characters.

    The run id is unique across functions, so the suffix alone makes the name unique; the
    function name is only there for people reading `kubectl get jobs`, and is cut to fit."""
    if run_id < 1 or attempt_number < 1:
        raise ValueError(f"run id {run_id} and attempt number {attempt_number} must be ≥ 1")
    suffix = f"-r{run_id}-a{attempt_number}"
    room = MAX_NAME - len("chalk-") - len(suffix)
    readable = _NOT_IN_DNS_LABEL.sub("-", function_name.lower()).strip("-")[:room].rstrip("-")
    return f"chalk-{readable}{suffix}" if readable else f"chalk{suffix}"


def attempt_labels(spec: AttemptJobSpec, config: KubernetesConfig) -> dict[str, str]:
    return {
        **config.extra_labels,
        LABEL_MANAGED_BY: MANAGED_BY,
        LABEL_COMPONENT: COMPONENT_RUN,
        LABEL_FUNCTION: spec.function_name,
        LABEL_RUN: str(spec.run_id),
        LABEL_ATTEMPT: str(spec.attempt_number),
        LABEL_ATTEMPT_ID: str(spec.attempt_id),
    }


def job_owner_reference(name: str, uid: str) -> dict[str, Any]:
    """Makes the garbage collector delete an object with its Job (TTL or cancel).

    `blockOwnerDeletion` stays false: setting it true needs `update` on jobs/finalizers under
    the OwnerReferencesPermissionEnforcement admission plugin, a right the executor lacks."""
    return {
        "apiVersion": "batch/v1",
        "kind": "Job",
        "name": name,
        "uid": uid,
        "blockOwnerDeletion": False,
    }


def run_pod_security_context() -> dict[str, Any]:
    # The Pod Security Standard "restricted" profile. python:*-slim runs as root by default;
    # runAsUser makes it run as 1000 whatever the image says, so an image built elsewhere
    # cannot bring root back. Built images create that user (see dockerfile.py); the base image
    # used to install at start has no passwd entry for it, which Python does not need.
    return {
        "runAsNonRoot": True,
        "runAsUser": RUN_UID,
        "runAsGroup": RUN_UID,
        "seccompProfile": {"type": "RuntimeDefault"},
    }


def run_container_security_context() -> dict[str, Any]:
    return {"allowPrivilegeEscalation": False, "capabilities": {"drop": ["ALL"]}}


def _resources(spec: AttemptJobSpec) -> dict[str, Any]:
    # Requests equal limits. For memory that is the only honest choice: the limit is where the
    # kernel OOM-kills, and a request below it lets the node overcommit and evict the run.
    # For cpu it makes the pod Guaranteed QoS (with memory), the last class evicted under node
    # pressure, and gives the run exactly the cores it asked for, as the local executor does.
    requests: dict[str, str] = {}
    limits: dict[str, str] = {}
    if spec.cpu is not None:
        requests["cpu"] = limits["cpu"] = parse_cpu(spec.cpu)
    if spec.memory is not None:
        requests["memory"] = limits["memory"] = parse_memory(spec.memory)
    if spec.gpu is not None:
        _, count = parse_gpu(spec.gpu)
        limits[GPU_RESOURCE] = str(count)  # extended resources: the request defaults to it
    resources: dict[str, Any] = {}
    if requests:
        resources["requests"] = requests
    if limits:
        resources["limits"] = limits
    return resources


def _gpu_placement(gpu: str, config: KubernetesConfig) -> dict[str, Any]:
    gpu_type, _ = parse_gpu(gpu)
    placement = config.gpu_node_selectors.get(gpu_type)
    if placement is None:
        raise UnsupportedSpecError(
            f"gpu {gpu_type!r} has no node selector in this cluster's GPU map; add it to "
            f"CHALK_K8S_GPU_NODE_SELECTORS or pick one of "
            f"{', '.join(sorted(config.gpu_node_selectors)) or '(none configured)'}"
        )
    result: dict[str, Any] = {}
    if placement.get("node_selector"):
        result["nodeSelector"] = dict(placement["node_selector"])
    if placement.get("tolerations"):
        result["tolerations"] = [dict(t) for t in placement["tolerations"]]
    return result


# Run by the venv's python: downloads the server's runtime (sdk/runtime_bundle.py), unpacks it in
# the venv and lists it in a .pth there. Retries for as long as the runner itself would: the
# server may be restarting. A 4xx will not get better; either way the message is the pod's
# last log line, which the run's log falls back to.
_FETCH_RUNTIME = f"""\
import io, os, sys, sysconfig, tarfile, time, urllib.request
from pathlib import Path

url = os.environ["CHALK_SERVER_URL"].rstrip("/") + "{RUNTIME_URL_PATH}"
deadline = time.monotonic() + 60
while True:
    try:
        with urllib.request.urlopen(url, timeout=30) as response:
            archive = response.read()
        break
    except OSError as exc:
        if getattr(exc, "code", 500) < 500 or time.monotonic() > deadline:
            sys.exit(f"chalkweb: cannot download the runner from {{url}}: {{exc}}")
        time.sleep(2)
target = Path(sys.prefix, "chalkweb-runtime")
with tarfile.open(fileobj=io.BytesIO(archive)) as tar:
    tar.extractall(target, filter="data")
Path(sysconfig.get_path("purelib"), "{runtime_bundle.PTH_NAME}").write_text(str(target))
"""


def install_at_start_script(image_spec: dict[str, Any]) -> str:
    """The shell script a pod runs when there is no registry to build images into.

    Installs go into a venv under /tmp because the run is not root; for the same reason
    `apt_install` is refused. The runtime comes first, before the spec's steps: a server that
    cannot be reached fails the run at once, not after every install, and no `env` step can
    change how it is reached. Then the spec's steps as written, then the runner."""
    lines = [
        "set -eu",
        f"echo {shlex.quote('chalkweb: ' + INSTALL_AT_START_NOTICE)} >&2",
        f'python -m venv "{INSTALL_VENV}"',
        f'export VIRTUAL_ENV="{INSTALL_VENV}" PATH="{INSTALL_VENV}/bin:$PATH"',
        f"python -c {shlex.quote(_FETCH_RUNTIME)}",
    ]
    for step in Image.from_spec(image_spec).steps:
        match step:
            case ImageStep("apt_install", packages):
                raise UnsupportedSpecError(
                    f"apt_install({', '.join(packages)}) needs an image build, and runs do not "
                    "get root to install at start; configure an image registry "
                    "(CHALK_K8S_REGISTRY) or install the tool with pip or run_commands"
                )
            case ImageStep("pip_install", packages):
                lines.append("pip install --no-cache-dir " + " ".join(map(shlex.quote, packages)))
            case ImageStep("run_commands", commands):
                lines.extend(f"sh -c {shlex.quote(command)}" for command in commands)
            case ImageStep("env", pairs):
                lines.extend(f"export {name}={shlex.quote(value)}" for name, value in pairs)
            case _:
                raise UnsupportedSpecError(f"image step {step.kind!r} is unknown")
    lines.append("exec " + " ".join(RUNNER_COMMAND))
    return "\n".join(lines) + "\n"


def job_deadline_seconds(spec: AttemptJobSpec, config: KubernetesConfig) -> int:
    """The Job's activeDeadlineSeconds, which Kubernetes counts from the Job's start: the wait
    for the slot of a Job made ahead, then the function's timeout (the runner counts that one
    from the slot, and enforces it exactly), then the margin for scheduling and the image pull,
    so the deadline is only ever the backstop for a runner that hangs."""
    assert spec.timeout_seconds is not None
    return (
        math.ceil(max(0.0, spec.wait_seconds))
        + math.ceil(spec.timeout_seconds)
        + config.deadline_margin_seconds
    )


def attempt_job(spec: AttemptJobSpec, config: KubernetesConfig) -> dict[str, Any]:
    name = job_name(spec.run_id, spec.attempt_number, spec.function_name)
    labels = attempt_labels(spec, config)
    env: list[dict[str, Any]] = [
        {"name": "CHALK_IN_RUN", "value": "1"},
        {"name": "CHALK_ATTEMPT_ID", "value": str(spec.attempt_id)},
        {"name": "CHALK_SERVER_URL", "value": spec.server_url},
        # Never in the pod spec, where anyone who can read Jobs would see it. Not optional:
        # the Job is created before its Secret (the Secret is owned by the Job, so it needs the
        # Job's uid), and a pod that starts first waits in CreateContainerConfigError until
        # the Secret appears, which is why config errors get a grace period.
        {
            "name": "CHALK_ATTEMPT_TOKEN",
            "valueFrom": {"secretKeyRef": {"name": name, "key": TOKEN_KEY, "optional": False}},
        },
        {"name": "PYTHONUNBUFFERED", "value": "1"},
    ]
    command = RUNNER_COMMAND
    annotations = {ANNOTATION_IMAGE_MODE: "built"}
    if spec.starts_at is not None:
        annotations[ANNOTATION_STARTS_AT] = spec.starts_at
    if spec.install_spec_at_start:
        script = install_at_start_script(spec.image_spec)
        command = ["/bin/sh", "-c", script]
        annotations[ANNOTATION_IMAGE_MODE] = "install-at-start"
        # The uid has no passwd entry in the base image, so HOME would be "/": not writable.
        env += [
            {"name": "HOME", "value": "/tmp"},
            {"name": "PIP_DISABLE_PIP_VERSION_CHECK", "value": "1"},
        ]
    container: dict[str, Any] = {
        "name": RUN_CONTAINER,
        "image": spec.image_ref,
        "imagePullPolicy": "IfNotPresent",
        "command": command,
        "env": env,
        "securityContext": run_container_security_context(),
        # A runner that dies before reporting still leaves its last lines on the Job.
        "terminationMessagePolicy": "FallbackToLogsOnError",
    }
    resources = _resources(spec)
    if resources:
        container["resources"] = resources
    pod_spec: dict[str, Any] = {
        "restartPolicy": "Never",
        "serviceAccountName": config.run_service_account,
        "automountServiceAccountToken": False,
        # Service links put every Service of the namespace in the environment: noise at best.
        "enableServiceLinks": False,
        "securityContext": run_pod_security_context(),
        "containers": [container],
    }
    if config.registry_secret:
        pod_spec["imagePullSecrets"] = [{"name": config.registry_secret}]
    if spec.gpu is not None:
        pod_spec.update(_gpu_placement(spec.gpu, config))
    job_spec: dict[str, Any] = {
        "backoffLimit": 0,  # retries belong to the platform, which counts and delays them
        "ttlSecondsAfterFinished": config.ttl_seconds_after_finished,
        # Disruptions end the Job with a condition that outlives the pod: an evicted or
        # preempted pod is deleted, and this is how the outcome still reads "interrupted".
        "podFailurePolicy": {
            "rules": [
                {
                    "action": "FailJob",
                    "onPodConditions": [{"type": "DisruptionTarget", "status": "True"}],
                }
            ]
        },
        "template": {
            "metadata": {
                "labels": labels,
                "annotations": {
                    # An attempt cannot move: autoscalers must not drain a node under it.
                    "cluster-autoscaler.kubernetes.io/safe-to-evict": "false",
                    "karpenter.sh/do-not-disrupt": "true",
                },
            },
            "spec": pod_spec,
        },
    }
    if spec.timeout_seconds is not None:
        job_spec["activeDeadlineSeconds"] = job_deadline_seconds(spec, config)
    return {
        "apiVersion": "batch/v1",
        "kind": "Job",
        "metadata": {
            "name": name,
            "namespace": config.namespace,
            "labels": labels,
            "annotations": annotations,
        },
        "spec": job_spec,
    }


def attempt_secret(
    spec: AttemptJobSpec, config: KubernetesConfig, *, token: str, job_uid: str
) -> dict[str, Any]:
    """The Secret the attempt's pod reads CHALK_ATTEMPT_TOKEN from, named like its Job and
    owned by it, so deleting the Job (cancel, TTL) deletes the token too."""
    name = job_name(spec.run_id, spec.attempt_number, spec.function_name)
    return {
        "apiVersion": "v1",
        "kind": "Secret",
        "metadata": {
            "name": name,
            "namespace": config.namespace,
            "labels": attempt_labels(spec, config),
            "ownerReferences": [job_owner_reference(name, job_uid)],
        },
        "type": "Opaque",
        "immutable": True,
        "stringData": {TOKEN_KEY: token},
    }
