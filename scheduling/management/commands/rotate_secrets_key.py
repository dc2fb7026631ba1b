"""`python manage.py rotate_secrets_key`: re-encrypts every secret under the first key of
CHALK_SECRETS_KEY, so the older keys after it can be dropped.

Safe while the platform runs and resumable: it works in small batches, each its own
transaction, and skips secrets already under the first key, so running it again after an
interruption finishes the rest (scheduling.services.secrets_reencrypt).
"""

from django.core.management.base import BaseCommand, CommandError

from scheduling.models import Secret
from scheduling.services import secrets_reencrypt


class Command(BaseCommand):
    help = (
        "Re-encrypts every secret under the first key of CHALK_SECRETS_KEY. First put the new "
        "key first and keep the old ones after it, on every process, then run this once; drop "
        "the old keys when it reports that none is left. Safe while the platform runs; if it "
        "stops part way, run it again to finish."
    )

    def add_arguments(self, parser) -> None:
        parser.add_argument(
            "--batch-size",
            type=int,
            default=100,
            help="secrets re-encrypted per transaction (default 100)",
        )

    def handle(self, *args, batch_size: int, **options) -> None:
        if batch_size < 1:
            raise CommandError(f"--batch-size must be 1 or more, not {batch_size}")
        total = Secret.objects.count()
        checked_so_far = [0]

        def progress(checked: int, reencrypted: int) -> None:
            checked_so_far[0] = checked
            self.stdout.write(
                f"  checked {checked} of {max(total, checked)} secret(s), "
                f"re-encrypted {reencrypted}"
            )

        reencrypted = secrets_reencrypt(batch_size=batch_size, progress=progress)
        self.stdout.write(
            f"Re-encrypted {reencrypted} secret(s) under the first key of CHALK_SECRETS_KEY "
            f"({checked_so_far[0] - reencrypted} already were); the keys after it can now be "
            "removed."
        )
