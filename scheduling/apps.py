from django.apps import AppConfig


class SchedulingConfig(AppConfig):
    name = "scheduling"
    verbose_name = "Functions"

    def ready(self) -> None:
        from common.crypto import register_encrypted_columns

        # The key rotation (manage.py rotate_secrets_key) re-encrypts secrets' values.
        register_encrypted_columns("scheduling.Secret", "ciphertext")
