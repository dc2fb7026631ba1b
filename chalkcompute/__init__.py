"""The Chalkweb SDK: declare scheduled Python functions and deploy them by running the script.

Importable without Django: it is what users install on laptops and what runs inside every run.
"""

from chalkcompute.alerts import Alerts, InvalidAlertsError
from chalkcompute.decorator import ChalkFunction, InvalidFunctionError, function
from chalkcompute.image import Image, ImageStep, InvalidImageError
from chalkcompute.retries import Retries
from chalkcompute.schedule import InvalidScheduleError
from chalkcompute.secret import Secret
from chalkcompute.spec import FunctionSpec, InvalidSpecError

__all__ = [
    "Alerts",
    "ChalkFunction",
    "FunctionSpec",
    "Image",
    "ImageStep",
    "InvalidAlertsError",
    "InvalidFunctionError",
    "InvalidImageError",
    "InvalidScheduleError",
    "InvalidSpecError",
    "Retries",
    "Secret",
    "function",
]
