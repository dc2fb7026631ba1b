"""`python manage.py create_token NAME`: prints a new API token (shown only this once)."""

from django.contrib.auth import get_user_model
from django.core.management.base import BaseCommand, CommandError
from django.utils import timezone

from scheduling.errors import SchedulingError
from scheduling.services import token_create


class Command(BaseCommand):
    help = "Creates an API token for the REST API and the chalkcompute SDK, and prints it once."

    def add_arguments(self, parser) -> None:
        parser.add_argument("name", help='who or what uses the token, e.g. "alice-laptop" or "ci"')
        parser.add_argument("--user", help="the username the token is created for (optional)")

    def handle(self, *args, name: str, user: str | None, **options) -> None:
        created_by = None
        if user is not None:
            created_by = get_user_model().objects.filter(username=user).first()
            if created_by is None:
                raise CommandError(f"there is no user {user!r}; create it with createsuperuser")
        try:
            token, plaintext = token_create(name=name, created_by=created_by, now=timezone.now())
        except SchedulingError as exc:
            raise CommandError(exc.message) from None
        self.stdout.write(
            f"Created API token {token.name!r}. It is shown only now; copy it:\n\n"
            f"    export CHALK_COMPUTE_TOKEN={plaintext}\n"
        )
