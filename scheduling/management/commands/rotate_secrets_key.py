"""`python manage.py rotate_secrets_key`: re-encrypts every encrypted value (secrets, alert
channels' URLs and webhook secrets: common.crypto.ENCRYPTED_COLUMNS) under the first key of
CHALK_SECRETS_KEY, so the older keys after it can be dropped.

Safe while the platform runs and resumable: it works in small batches, each its own
transaction, and skips values already under the first key, so running it again after an
interruption finishes the rest (scheduling.services.secrets_reencrypt). It then decrypts every
value with the first key alone, and fails (exit status 1, naming them) while any is not.
"""

from django.core.management.base import BaseCommand, CommandError

from scheduling.services import (
    encrypted_rows_count,
    encrypted_values_not_under_first_key,
    secrets_reencrypt,
)

NAMED = 20  # values named in the failure, at most


class Command(BaseCommand):
    help = (
        "Re-encrypts every secret and alert channel under the first key of CHALK_SECRETS_KEY. "
        "First put the new key first and keep the old ones after it, on every process, then "
        "run this once; drop the old keys when it reports that none is left. Safe while the "
        "platform runs; if it stops part way, run it again to finish."
    )

    def add_arguments(self, parser) -> None:
        parser.add_argument(
            "--batch-size",
            type=int,
            default=100,
            help="rows re-encrypted per transaction (default 100)",
        )

    def handle(self, *args, batch_size: int, **options) -> None:
        if batch_size < 1:
            raise CommandError(f"--batch-size must be 1 or more, not {batch_size}")
        total = encrypted_rows_count()
        checked_so_far = [0]

        def progress(checked: int, reencrypted: int) -> None:
            checked_so_far[0] = checked
            self.stdout.write(
                f"  checked {checked} of {max(total, checked)} encrypted record(s), "
                f"re-encrypted {reencrypted}"
            )

        reencrypted = secrets_reencrypt(batch_size=batch_size, progress=progress)
        # Never "done" on faith: every value must decrypt with the first key alone.
        left = encrypted_values_not_under_first_key()
        if left:
            named = ", ".join(left[:NAMED]) + (
                f" and {len(left) - NAMED} more" if left[NAMED:] else ""
            )
            raise CommandError(
                f"{len(left)} encrypted value(s) are still not under the first key of "
                f"CHALK_SECRETS_KEY: {named}. Keep the old keys. A value written meanwhile by a "
                "process whose CHALK_SECRETS_KEY does not start with the new key is re-encrypted "
                "by running this again once every process has it; a value no listed key "
                "decrypts needs its old key put back after the new one (or the secret set "
                "again, the channel made again)."
            )
        self.stdout.write(
            f"Re-encrypted {reencrypted} record(s) (secrets, alert channels) under the first key "
            f"of CHALK_SECRETS_KEY ({checked_so_far[0] - reencrypted} already were); every "
            "encrypted value decrypts with that key alone, so the keys after it can now be "
            "removed."
        )
