from django.contrib import admin

from alerts.models import Channel, Delivery


@admin.register(Channel)
class ChannelAdmin(admin.ModelAdmin):
    """Read-only: channels are made and deleted on the console's Channels page (audited)."""

    list_display = ["name", "kind", "display", "is_default", "created_at", "created_by"]
    fields = ["name", "kind", "display", "is_default", "functions", "created_at", "created_by"]
    readonly_fields = fields

    def has_add_permission(self, request) -> bool:
        return False

    def has_change_permission(self, request, obj=None) -> bool:
        return False

    def has_delete_permission(self, request, obj=None) -> bool:
        return False


@admin.register(Delivery)
class DeliveryAdmin(admin.ModelAdmin):
    list_display = ["at", "channel_name", "function", "run", "kind", "status", "tries"]
    list_filter = ["kind", "status"]
    search_fields = ["channel_name", "function__name"]

    def has_add_permission(self, request) -> bool:
        return False

    def has_change_permission(self, request, obj=None) -> bool:
        return False

    def has_delete_permission(self, request, obj=None) -> bool:
        return False
