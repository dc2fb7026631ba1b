from django.apps import AppConfig


class AlertsConfig(AppConfig):
    name = "alerts"
    verbose_name = "Alerts"
    default_auto_field = "django.db.models.BigAutoField"

    def ready(self) -> None:
        from common.crypto import register_encrypted_columns

        # The key rotation (manage.py rotate_secrets_key) re-encrypts these too. (Its deliveries
        # reach /metrics through settings.METRICS_COLLECTORS.)
        register_encrypted_columns("alerts.Channel", "url_encrypted", "secret_encrypted")
