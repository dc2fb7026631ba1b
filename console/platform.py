"""The console's view of the platform's health: a banner on every page while something is
wrong (health.state), read lazily, so a page that renders no banner runs no query."""

from django.utils import timezone
from django.utils.functional import SimpleLazyObject

from health.state import PlatformState


def platform_banner(request) -> dict:
    """Template context: `platform`, the PlatformState (one query, on first use)."""
    user = getattr(request, "user", None)
    if user is None or not user.is_authenticated:
        return {}
    return {"platform": SimpleLazyObject(lambda: PlatformState.read(now=timezone.now()))}
