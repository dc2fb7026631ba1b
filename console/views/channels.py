"""Alert channels: add one (an apprise URL or a signed JSON webhook; the webhook's signing
secret is shown once, in the response that made it), list them (scheme and host only),
delete one, send a test alert, and each channel's recent deliveries."""

from django.contrib import messages
from django.template.response import TemplateResponse
from django.urls import reverse
from django.utils import timezone
from django.views.decorators.cache import never_cache

from access.actor import Actor
from alerts import channels, services
from alerts.models import Channel, ChannelKind, Delivery
from common.errors import ServiceError
from console.access import console_view, see_other

RECENT = 5


def _channel(request) -> Channel:
    raw = request.POST.get("channel", "")
    channel = Channel.objects.filter(pk=int(raw)).first() if raw.isdigit() else None
    if channel is None:
        raise channels.AlertsError("There is no such channel; reload the page and try again.")
    return channel


@never_cache  # the response that shows a new webhook's secret must never be stored
@console_view
def channels_page(request):
    actor = Actor.of_request(request)
    error, created, status = "", None, 200
    if request.method == "POST":
        action = request.POST.get("action")
        try:
            if action == "create":
                channel, secret = channels.channel_create(
                    name=request.POST.get("name", ""),
                    kind=request.POST.get("kind", ""),
                    url=request.POST.get("url", ""),
                    is_default=request.POST.get("default") == "on",
                    functions=channels.functions_named(
                        request.POST.get("functions", "").split(",")
                    ),
                    actor=actor,
                    now=timezone.now(),
                )
                # Rendered here, not redirected: the secret must not sit in a session.
                created, status = {"channel": channel, "secret": secret}, 201
            elif action == "delete":
                channel = _channel(request)
                channels.channel_delete(channel=channel, actor=actor, now=timezone.now())
                messages.success(request, f"Channel {channel.name} deleted.")
                return see_other(reverse("channels"))
            elif action == "test":
                channel = _channel(request)
                services.channel_test(channel=channel, actor=actor, now=timezone.now())
                messages.success(
                    request,
                    f"Test alert queued for {channel.name}; its delivery shows below.",
                )
                return see_other(reverse("channels"))
            else:
                raise channels.AlertsError("Unknown action: use the page's buttons.")
        except ServiceError as exc:
            error, status = exc.message, exc.status
    listed = Channel.objects.prefetch_related("functions")
    context = {
        "channels": [
            (channel, Delivery.objects.filter(channel=channel)[:RECENT]) for channel in listed
        ],
        "created": created,
        "error": error,
        "kinds": ChannelKind.choices,
        # A rejected channel keeps its name and choices in the form, never its URL.
        "form": {k: request.POST.get(k, "") for k in ("name", "kind", "functions", "default")}
        if error
        else {},
    }
    return TemplateResponse(request, "console/channels.html", context, status=status)
