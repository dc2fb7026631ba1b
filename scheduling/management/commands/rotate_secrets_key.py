"""`python manage.py rotate_secrets_key`: re-encrypts every secret under the first key of
CHALK_SECRETS_KEY, so the older keys after it can be dropped."""

from django.core.management.base import BaseCommand

from scheduling.services import secrets_reencrypt


class Command(BaseCommand):
    help = (
        "Re-encrypts every secret under the first key of CHALK_SECRETS_KEY. Put the new key "
        "first and keep the old ones after it until this has run on one process."
    )

    def handle(self, *args, **options) -> None:
        count = secrets_reencrypt()
        self.stdout.write(
            f"Re-encrypted {count} secret(s) under the first key of CHALK_SECRETS_KEY; "
            "the keys after it can now be removed."
        )
