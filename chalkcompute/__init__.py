"""The Chalkweb SDK: declare scheduled Python functions and deploy them by running the script.

Importable without Django: it is what users install on laptops and what runs inside every run.
"""

import importlib
from typing import TYPE_CHECKING

# Each name is imported from its module when it is first used: every run's runner and function
# process import `chalkcompute.runtime`, and at the top of the hour hundreds start at once, so
# they do not pay for the SDK's declaration and deploy code they never use.
_EXPORTS = {
    "Alerts": "alerts", "InvalidAlertsError": "alerts", "RunHandle": "calls",
    "ChalkFunction": "decorator", "InvalidFunctionError": "decorator", "function": "decorator",
    "DeployError": "deploy", "FunctionError": "errors", "NotInRunError": "errors",
    "RemoteExecutionError": "errors", "RunContext": "run_context", "current_run": "run_context",
    "Image": "image", "ImageStep": "image", "InvalidImageError": "image",
    "Retries": "retries", "RetryPolicy": "retries", "InvalidScheduleError": "schedule",
    "Secret": "secret", "FunctionSpec": "spec", "InvalidSpecError": "spec",
}  # fmt: skip

if TYPE_CHECKING:
    from chalkcompute.alerts import Alerts, InvalidAlertsError
    from chalkcompute.calls import RunHandle
    from chalkcompute.decorator import ChalkFunction, InvalidFunctionError, function
    from chalkcompute.deploy import DeployError
    from chalkcompute.errors import FunctionError, NotInRunError, RemoteExecutionError
    from chalkcompute.image import Image, ImageStep, InvalidImageError
    from chalkcompute.retries import Retries, RetryPolicy
    from chalkcompute.run_context import RunContext, current_run
    from chalkcompute.schedule import InvalidScheduleError
    from chalkcompute.secret import Secret
    from chalkcompute.spec import FunctionSpec, InvalidSpecError

__all__ = [
    "Alerts",
    "ChalkFunction",
    "DeployError",
    "FunctionError",
    "FunctionSpec",
    "Image",
    "ImageStep",
    "InvalidAlertsError",
    "InvalidFunctionError",
    "InvalidImageError",
    "InvalidScheduleError",
    "InvalidSpecError",
    "NotInRunError",
    "RemoteExecutionError",
    "Retries",
    "RetryPolicy",
    "RunContext",
    "RunHandle",
    "Secret",
    "current_run",
    "function",
]


def __getattr__(name: str):
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module 'chalkcompute' has no attribute {name!r}")
    value = getattr(importlib.import_module(f"chalkcompute.{module}"), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted({*globals(), *_EXPORTS})
