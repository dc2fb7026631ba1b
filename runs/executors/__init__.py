"""Executors start an attempt's runner somewhere: `local` (a subprocess of the worker) or
`kubernetes` (a Job). Both run the same runner, so runs look the same wherever they ran."""


def executor_for(name: str | None = None):
    from django.conf import settings

    name = name or settings.CHALK_EXECUTOR
    if name == "local":
        from runs.executors.local.executor import LocalExecutor

        return LocalExecutor()
    if name == "kubernetes":
        from runs.executors.kubernetes.executor import KubernetesExecutor

        return KubernetesExecutor()
    raise ValueError(f"unknown executor {name!r}: set CHALK_EXECUTOR to local or kubernetes")
