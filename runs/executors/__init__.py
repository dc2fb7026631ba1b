"""Executors start an attempt's runner somewhere: `local` (a subprocess of the worker) or
`kubernetes` (a Job). Both run the same runner, so runs look the same wherever they ran."""

from typing import TYPE_CHECKING, Any, Protocol

if TYPE_CHECKING:
    from runs.models import Attempt
    from scheduling.models import Image


class Executor(Protocol):
    """What the platform asks of an executor. State changes go through runs.services."""

    name: str

    def run(self, attempt: "Attempt", token: str) -> None:
        """Starts (or, on the local executor, runs to its end) a claimed attempt."""

    def cancel(self, attempt: "Attempt") -> None:
        """Stops an attempt whose run was cancelled; best effort, never raises."""

    def build_ahead(self, image: "Image") -> None:
        """Builds the image of a version just deployed, so that its first run starts on its
        slot rather than after the build. A failed build is recorded on its ImageBuild (the
        console shows its log) and tried again by the first run."""

    def installs_at_start(self, image_spec: dict[str, Any]) -> bool:
        """Whether a run of this image installs its packages when it starts (the console
        says so), rather than in a build made once per image."""

    def isolation(self) -> str | None:
        """None when each run is isolated from the platform and from other runs (a sandbox, a
        pod); else the warning that it is not, which `make run` and the console show."""


def executor_for(name: str | None = None) -> Executor:
    from django.conf import settings

    name = name or settings.CHALK_EXECUTOR
    if name == "local":
        from runs.executors.local.executor import LocalExecutor

        return LocalExecutor()
    if name == "kubernetes":
        from runs.executors.kubernetes.executor import KubernetesExecutor

        return KubernetesExecutor()
    raise ValueError(f"unknown executor {name!r}: set CHALK_EXECUTOR to local or kubernetes")
