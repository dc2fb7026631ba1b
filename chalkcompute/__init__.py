"""The Chalkweb SDK: declare scheduled Python functions and deploy them by running the script.

Importable without Django: it is what users install on laptops and what runs inside every run.
"""

from chalkcompute.alerts import Alerts, InvalidAlertsError
from chalkcompute.calls import RunHandle
from chalkcompute.decorator import ChalkFunction, InvalidFunctionError, function
from chalkcompute.deploy import DeployError
from chalkcompute.errors import FunctionError, RemoteExecutionError
from chalkcompute.image import Image, ImageStep, InvalidImageError
from chalkcompute.retries import Retries, RetryPolicy
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
    "RemoteExecutionError",
    "Retries",
    "RetryPolicy",
    "RunHandle",
    "Secret",
    "function",
]
