"""Bearer-token authentication for the REST API (`Authorization: Bearer chalk_…`).

Tokens are looked up by their SHA-256; the text itself is never stored. `runs/` reuses these
classes for its endpoints through the REST_FRAMEWORK defaults.
"""

from datetime import timedelta

from django.http import HttpRequest
from django.utils import timezone
from drf_spectacular.extensions import OpenApiAuthenticationExtension
from drf_spectacular.plumbing import build_bearer_security_scheme_object
from rest_framework import exceptions
from rest_framework.authentication import BaseAuthentication, get_authorization_header
from rest_framework.permissions import BasePermission

from scheduling.models import ApiToken
from scheduling.services import CREATE_TOKEN_HINT, token_hash

# last_used_at is informational: one write a minute per token is enough.
LAST_USED_RESOLUTION = timedelta(minutes=1)

NO_TOKEN = (
    "This endpoint needs an API token: send the header `Authorization: Bearer <token>`. "
    f"To get a token, {CREATE_TOKEN_HINT}, then export CHALK_COMPUTE_TOKEN=<token>"
)
MALFORMED_HEADER = (
    "The Authorization header must be `Bearer <token>` with a single token and no spaces. "
    f"To get a token, {CREATE_TOKEN_HINT}"
)
UNKNOWN_TOKEN = (
    f"This API token is not valid on this server. To get a token, {CREATE_TOKEN_HINT}, then "
    "export CHALK_COMPUTE_TOKEN=<token>"
)
REVOKED_TOKEN = (
    "This API token ({name}, {prefix}…) was revoked. To get a new one, "
    f"{CREATE_TOKEN_HINT}, then export CHALK_COMPUTE_TOKEN=<token>"
)


class BearerTokenAuthentication(BaseAuthentication):
    keyword = "Bearer"

    def authenticate(self, request: HttpRequest):
        parts = get_authorization_header(request).split()
        if not parts or parts[0].lower() != self.keyword.lower().encode():
            return None  # DRF answers 401 NO_TOKEN via the exception handler
        if len(parts) != 2:
            raise exceptions.AuthenticationFailed(MALFORMED_HEADER, code="invalid_token")
        try:
            plaintext = parts[1].decode("ascii")
        except UnicodeDecodeError:
            raise exceptions.AuthenticationFailed(UNKNOWN_TOKEN, code="invalid_token") from None
        token = (
            ApiToken.objects.select_related("created_by")
            .filter(token_hash=token_hash(plaintext))
            .first()
        )
        if token is None:
            raise exceptions.AuthenticationFailed(UNKNOWN_TOKEN, code="invalid_token")
        if token.revoked_at is not None:
            raise exceptions.AuthenticationFailed(
                REVOKED_TOKEN.format(name=token.name, prefix=token.prefix), code="invalid_token"
            )
        now = timezone.now()
        if token.last_used_at is None or now - token.last_used_at >= LAST_USED_RESOLUTION:
            ApiToken.objects.filter(pk=token.pk).update(last_used_at=now)
            token.last_used_at = now
        return token.created_by, token

    def authenticate_header(self, request: HttpRequest) -> str:
        # Makes DRF answer 401 (with WWW-Authenticate), not 403, to a request without a token.
        return f'{self.keyword} realm="api"'


class HasApiToken(BasePermission):
    """Allows requests that authenticated with an API token (session logins do not count)."""

    def has_permission(self, request, view) -> bool:
        if not isinstance(request.auth, ApiToken):
            raise exceptions.NotAuthenticated(NO_TOKEN)
        return True


def actor_name(request) -> str:
    """Who did it, for paused_by/created_by: the API token's name or the logged-in username."""
    if isinstance(getattr(request, "auth", None), ApiToken):
        return request.auth.name
    user = getattr(request, "user", None)
    return user.get_username() if user is not None and user.is_authenticated else ""


class BearerTokenScheme(OpenApiAuthenticationExtension):
    target_class = "scheduling.auth.BearerTokenAuthentication"
    name = "bearerAuth"

    def get_security_definition(self, auto_schema):
        return build_bearer_security_scheme_object(
            header_name="Authorization", token_prefix="Bearer"
        )
