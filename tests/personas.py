"""People for tests that call services directly: `acting("alice")` is alice with a role (admin
unless said), as a console or admin request would make her; PLATFORM is the platform itself
(the tick, the reaper, a command on the server)."""

from django.contrib.auth import get_user_model
from django.contrib.auth.models import Group
from django.utils import timezone

from access.actor import Actor
from access.tokens import token_create

PLATFORM = Actor.platform()
OLIVIA_PASSWORD = "olivia-operates-7"  # olivia (the `olivia` fixture) signs in with it


def person(username: str, role: str | None = "admin"):
    """The user `username` (made if needed) holding exactly `role`."""
    user, _ = get_user_model().objects.get_or_create(username=username)
    user.groups.set(Group.objects.filter(name=role) if role else [])
    return user


def acting(username: str, role: str | None = "admin", token=None) -> Actor:
    return Actor(user=person(username, role), token=token)


def make_token(name: str, username: str = "alice", role: str = "admin", **options):
    """(token, plaintext) of `username`'s new token, made on the server."""
    return token_create(
        name=name, user=person(username, role), actor=PLATFORM, now=timezone.now(), **options
    )
