"""`python manage.py create_token NAME --user USERNAME`: prints a new API token of USERNAME's
(shown only this once). Run on the server, so it acts as the platform: the token still can do
at most what its owner's role allows."""

import datetime as dt

from django.contrib.auth import get_user_model
from django.core.management.base import BaseCommand, CommandError
from django.utils import timezone

from access.actor import Actor
from access.tokens import token_create
from common.errors import ServiceError


class Command(BaseCommand):
    help = "Creates an API token of a user for the REST API and the SDK, and prints it once."

    def add_arguments(self, parser) -> None:
        parser.add_argument("name", help='who or what uses the token, e.g. "alice-laptop" or "ci"')
        parser.add_argument("--user", required=True, help="the username the token belongs to")
        parser.add_argument(
            "--scopes",
            help="comma-separated, of read, run, deploy, secrets, admin (default: all the "
            "user's role allows)",
        )
        parser.add_argument("--expires-days", type=int, help="the token stops working after this")

    def handle(self, *args, name: str, user: str, scopes, expires_days, **options) -> None:
        owner = get_user_model().objects.filter(username=user).first()
        if owner is None:
            raise CommandError(f"there is no user {user!r}; create it with createsuperuser")
        now = timezone.now()
        try:
            token, plaintext = token_create(
                name=name,
                user=owner,
                actor=Actor.platform(),
                now=now,
                scopes=[s.strip() for s in scopes.split(",")] if scopes else None,
                expires_at=now + dt.timedelta(days=expires_days) if expires_days else None,
            )
        except ServiceError as exc:
            raise CommandError(exc.message) from None
        self.stdout.write(
            f"Created API token {token.name!r} of {user} (scopes: {', '.join(token.scopes)}). "
            "It is shown only now; copy it:\n\n"
            f"    export CHALK_COMPUTE_TOKEN={plaintext}\n"
        )
