"""Channels in the admin: added and deleted through alerts.channels (checked and audited as on
the console and the API), never changed (the URL is write-only). Webhooks are made on the
console's Channels page, the one place their signing secret can be shown once."""

from django import forms
from django.contrib import admin
from django.core.exceptions import ValidationError
from django.utils import timezone

from access.actor import Actor
from access.admin import RightsAdmin
from alerts import channels
from alerts.models import Channel, ChannelKind, Delivery


class ChannelForm(forms.ModelForm):
    url = forms.CharField(
        max_length=2000,
        help_text="An Apprise URL (slack://…, mailto://…, ntfy://…, json://…). Stored encrypted; "
        "afterwards only its scheme and host are shown.",
    )

    class Meta:
        model = Channel
        fields = ["name", "url", "is_default", "functions"]

    def clean(self):
        data = super().clean()
        if "name" in data and "url" in data:
            try:
                channels.channel_check(
                    name=data["name"].strip(), kind=ChannelKind.APPRISE, url=data["url"].strip()
                )
            except channels.AlertsError as exc:
                raise ValidationError(exc.message) from None
        return data


@admin.register(Channel)
class ChannelAdmin(RightsAdmin):
    list_display = ["name", "kind", "display", "is_default", "created_at", "created_by"]
    readonly_fields = ["name", "kind", "display", "is_default", "functions", "created_at",
                       "created_by"]  # fmt: skip

    def get_form(self, request, obj=None, **kwargs):
        if obj is None:
            kwargs["form"] = ChannelForm
        return super().get_form(request, obj, **kwargs)

    def get_fields(self, request, obj=None):
        return ChannelForm.Meta.fields if obj is None else self.readonly_fields

    def get_readonly_fields(self, request, obj=None):
        return [] if obj is None else self.readonly_fields

    def save_model(self, request, obj: Channel, form, change: bool) -> None:
        data = form.cleaned_data
        channel, _ = channels.channel_create(
            name=data["name"],
            kind=ChannelKind.APPRISE,
            url=data["url"],
            is_default=data["is_default"],
            functions=list(data["functions"]),
            actor=Actor.of_request(request),
            now=timezone.now(),
        )
        obj.pk = channel.pk
        obj.refresh_from_db()

    def save_related(self, request, form, formsets, change: bool) -> None:
        pass  # channel_create set the functions

    # Operators and above see them; admins add and delete them (alerts.channels.MANAGE_CHANNELS,
    # which channel_create and channel_delete check again).
    def has_module_permission(self, request) -> bool:
        return self.has_run_permission(request)

    def has_view_permission(self, request, obj=None) -> bool:
        return self.has_run_permission(request)

    def has_add_permission(self, request) -> bool:
        return self.has_admin_permission(request)

    def has_change_permission(self, request, obj=None) -> bool:
        return False

    def has_delete_permission(self, request, obj=None) -> bool:
        return self.has_admin_permission(request)

    def delete_model(self, request, obj: Channel) -> None:
        channels.channel_delete(channel=obj, actor=Actor.of_request(request), now=timezone.now())

    def delete_queryset(self, request, queryset) -> None:
        actor, now = Actor.of_request(request), timezone.now()
        for channel in queryset:
            channels.channel_delete(channel=channel, actor=actor, now=now)


@admin.register(Delivery)
class DeliveryAdmin(RightsAdmin):
    list_display = ["at", "channel_name", "function", "run", "kind", "status", "tries"]
    list_filter = ["kind", "status"]
    search_fields = ["channel_name", "function__name"]

    def has_module_permission(self, request) -> bool:
        return self.has_run_permission(request)

    def has_view_permission(self, request, obj=None) -> bool:
        return self.has_run_permission(request)

    def has_add_permission(self, request) -> bool:
        return False

    def has_change_permission(self, request, obj=None) -> bool:
        return False

    def has_delete_permission(self, request, obj=None) -> bool:
        return False
