from django.apps import AppConfig


class AlertsConfig(AppConfig):
    name = "alerts"
    verbose_name = "Alerts"
    default_auto_field = "django.db.models.BigAutoField"

    def ready(self) -> None:
        from alerts.metrics import DeliveryCollector
        from common.crypto import register_encrypted_columns
        from health import metrics

        # The key rotation (manage.py rotate_secrets_key) re-encrypts these too.
        register_encrypted_columns("alerts.Channel", "url_encrypted", "secret_encrypted")

        if DeliveryCollector not in metrics.COLLECTORS:
            metrics.COLLECTORS.append(DeliveryCollector)
