"""`python manage.py set_role USERNAME ROLE`: gives a person one of the roles (viewer,
operator, deployer, admin), or `none` to take their role away. Audited, as the platform."""

from django.contrib.auth import get_user_model
from django.core.management.base import BaseCommand, CommandError
from django.utils import timezone

from access.actor import Actor
from access.rights import ROLES
from access.services import role_set
from common.errors import ServiceError


class Command(BaseCommand):
    help = "Gives a user a role: " + ", ".join(ROLES) + ", or none."

    def add_arguments(self, parser) -> None:
        parser.add_argument("username")
        parser.add_argument("role", choices=[*ROLES, "none"])

    def handle(self, *args, username: str, role: str, **options) -> None:
        user = get_user_model().objects.filter(username=username).first()
        if user is None:
            raise CommandError(f"there is no user {username!r}")
        try:
            role_set(
                actor=Actor.platform(),
                user=user,
                role=None if role == "none" else role,
                now=timezone.now(),
            )
        except ServiceError as exc:
            raise CommandError(exc.message) from None
        self.stdout.write(f"{username} now has {'no' if role == 'none' else 'the ' + role} role.")
