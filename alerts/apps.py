from django.apps import AppConfig


class AlertsConfig(AppConfig):
    name = "alerts"
    verbose_name = "Alerts"
    default_auto_field = "django.db.models.BigAutoField"

    def ready(self) -> None:
        from alerts.metrics import DeliveryCollector
        from health import metrics

        if DeliveryCollector not in metrics.COLLECTORS:
            metrics.COLLECTORS.append(DeliveryCollector)
