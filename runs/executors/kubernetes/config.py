"""How the Kubernetes executor is configured: one frozen value, built by the Django settings.

Everything here is plain Python so manifests and outcome rules can be tested without a
database or a cluster.
"""

from collections.abc import Mapping
from dataclasses import dataclass, field
from types import MappingProxyType

from chalkcompute.quantities import GPU_TYPES


def _gke(accelerator: str) -> dict:
    return {"node_selector": {"cloud.google.com/gke-accelerator": accelerator}}


def _karpenter_aws(gpu_name: str) -> dict:
    return {"node_selector": {"karpenter.k8s.aws/instance-gpu-name": gpu_name}}


# Where each GPU type lives. GKE labels GPU nodes with `cloud.google.com/gke-accelerator` and
# taints them `nvidia.com/gpu=present:NoSchedule`; the toleration below matches that taint
# (and the same taint most EKS/AKS GPU node groups carry). A10G and L40S are AWS-only GPUs
# (g5, g6e instances): GKE has no accelerator name for them, so their defaults use Karpenter's
# `karpenter.k8s.aws/instance-gpu-name` label. Any other cluster overrides the whole map.
_GPU_TOLERATIONS = [{"key": "nvidia.com/gpu", "operator": "Exists", "effect": "NoSchedule"}]
DEFAULT_GPU_NODE_SELECTORS: Mapping[str, Mapping] = MappingProxyType(
    {
        gpu_type: {**placement, "tolerations": _GPU_TOLERATIONS}
        for gpu_type, placement in {
            "nvidia-t4": _gke("nvidia-tesla-t4"),
            "nvidia-l4": _gke("nvidia-l4"),
            "nvidia-a10g": _karpenter_aws("a10g"),
            "nvidia-l40s": _karpenter_aws("l40s"),
            "nvidia-a100": _gke("nvidia-tesla-a100"),
            "nvidia-a100-80gb": _gke("nvidia-a100-80gb"),
            "nvidia-h100": _gke("nvidia-h100-80gb"),
        }.items()
    }
)
assert set(DEFAULT_GPU_NODE_SELECTORS) == set(GPU_TYPES), "a GPU type has no default placement"

# Rootless BuildKit, pinned: a floating tag would change how every image is built under us.
DEFAULT_BUILDKIT_IMAGE = "moby/buildkit:v0.24.0-rootless"
# Pushes what BuildKit built, in a container of its own (see dockerfile.build_job); pinned too.
DEFAULT_PUSH_IMAGE = "gcr.io/go-containerregistry/crane:v0.20.6"


@dataclass(frozen=True)
class KubernetesConfig:
    namespace: str = "chalkweb-runs"
    # A service account with no RoleBinding and no mounted token: user code gets no API rights.
    run_service_account: str = "chalkweb-run"
    ttl_seconds_after_finished: int = 3600
    # Added to the run's timeout (and to the wait for the slot of a Job made ahead) for the
    # Job's activeDeadlineSeconds: the runner enforces the exact timeout and reports it with a
    # traceback; the deadline is the backstop for a runner that hangs, and must also cover
    # scheduling and the image pull, which count toward it.
    deadline_margin_seconds: int = 300
    gpu_node_selectors: Mapping[str, Mapping] = field(
        default_factory=lambda: dict(DEFAULT_GPU_NODE_SELECTORS)
    )
    # Where built images are pushed ("registry.example.com/team"); None means no builds.
    registry: str | None = None
    # Opt-in when there is no registry: the pod installs the image spec as it starts.
    install_at_start: bool = False
    registry_insecure: bool = False  # an in-cluster registry served over plain HTTP
    # A kubernetes.io/dockerconfigjson Secret in `namespace`: pull secret for runs, push
    # credentials for builds.
    registry_secret: str | None = None
    # python version -> "sha256:..." digest of python:<version>-slim-trixie. Digests cannot be
    # looked up offline, so the tag pins the Debian release and this map pins the bytes.
    base_image_digests: Mapping[str, str] = field(default_factory=dict)
    buildkit_image: str = DEFAULT_BUILDKIT_IMAGE
    push_image: str = DEFAULT_PUSH_IMAGE
    build_timeout_seconds: int = 1800
    build_cpu: str = "1"
    build_memory: str = "2Gi"
    # Outcome rules: how long a state may last before it is a failure. For a Job made ahead
    # of its slot they count from the slot: the wait before it never shortens them.
    pending_timeout_seconds: int = 300
    image_pull_grace_seconds: int = 120
    config_error_grace_seconds: int = 60
    # Extra labels on every Job and pod (cost allocation, network policies).
    extra_labels: Mapping[str, str] = field(default_factory=dict)
    # How much of a pod's log to read when its runner could not ship it.
    log_tail_lines: int = 2000
    log_limit_bytes: int = 1024 * 1024
    # Seconds an API call may take (connect and read) before it fails; watches set their own.
    api_timeout_seconds: float = 30
