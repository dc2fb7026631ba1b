"""What the console shows of alerts."""

from dataclasses import dataclass

from django.db.models import QuerySet

from alerts.channels import channels_of
from alerts.models import Delivery
from alerts.rules import rules_of_function
from scheduling.models import Function


def function_deliveries(*, function_id: int) -> QuerySet[Delivery]:
    """The function's alerts, newest first (one row per channel)."""
    return Delivery.objects.filter(function_id=function_id).select_related("run")


@dataclass(frozen=True)
class FunctionAlerting:
    rules: list[str]  # in words
    channels: list[str]  # where its alerts go now
    missing: list[str]  # channels its code names that do not exist


def function_alerting(function: Function) -> FunctionAlerting:
    rules = rules_of_function(function)
    # A named channel that exists is always among channels_of's (it is chosen).
    channels = [channel.name for channel in channels_of(function, rules)]
    return FunctionAlerting(
        rules=rules.describe(),
        channels=channels,
        missing=[name for name in rules.channels if name not in channels],
    )
