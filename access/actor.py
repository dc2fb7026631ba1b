"""Who is acting: a person (from a console session, the admin or a command), a person through
one of their API tokens, or the platform itself (the tick, the reaper, retries)."""

from dataclasses import dataclass

from django.contrib.auth.base_user import AbstractBaseUser

from access.models import ApiToken

PLATFORM = "platform"


@dataclass(frozen=True)
class Actor:
    user: AbstractBaseUser | None = None
    token: ApiToken | None = None  # when the request carried one
    address: str | None = None  # the client's address, when it came over the network

    @classmethod
    def platform(cls) -> "Actor":
        return cls()

    @classmethod
    def of_request(cls, request) -> "Actor":
        """The person (and token) behind a console, admin or API request."""
        token = getattr(request, "auth", None)
        user = getattr(request, "user", None)
        if user is not None and not user.is_authenticated:
            user = None
        return cls(user=user, token=token, address=request.META.get("REMOTE_ADDR") or None)

    @property
    def is_platform(self) -> bool:
        return self.user is None and self.token is None

    @property
    def name(self) -> str:
        """What paused_by, deployed_by and triggered_by record: the token's name for an API
        call (it says which machine), else the username, else "platform"."""
        if self.token is not None:
            return self.token.name
        if self.user is not None:
            return self.user.get_username()
        return PLATFORM
