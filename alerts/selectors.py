"""What the console shows of alerts."""

from django.db.models import QuerySet

from alerts.models import Delivery


def function_deliveries(*, function_id: int) -> QuerySet[Delivery]:
    """The function's alerts, newest first (one row per channel)."""
    return Delivery.objects.filter(function_id=function_id).select_related("run")
