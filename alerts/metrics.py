"""Alert deliveries on /metrics: settings.METRICS_COLLECTORS names this collector, and
health.metrics makes one on every scrape."""

from django.db.models import Count
from prometheus_client.core import GaugeMetricFamily

from alerts.models import Delivery


class DeliveryCollector:
    def __init__(self, now=None) -> None:
        self._now = now

    def collect(self):
        deliveries = GaugeMetricFamily(
            "chalk_alert_deliveries",
            "Alert deliveries the database holds (CHALK_ALERT_RETENTION_DAYS), by kind and "
            "outcome.",
            labels=["kind", "status"],
        )
        counts = Delivery.objects.values_list("kind", "status").annotate(n=Count("id"))
        for kind, status, count in counts.order_by("kind", "status"):
            deliveries.add_metric([kind, status], count)
        yield deliveries
