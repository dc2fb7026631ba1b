"""Alert channels over the REST API: list (the `read` scope), create (the answer holds the
webhook's signing secret, once) and delete (the `admin` scope: alerts.channels.MANAGE_CHANNELS,
as on the console and the admin). URLs are never returned."""

from django.utils import timezone
from drf_spectacular.utils import OpenApiParameter, extend_schema, extend_schema_serializer
from rest_framework import serializers, status
from rest_framework.exceptions import NotFound
from rest_framework.response import Response
from rest_framework.views import APIView

from access.actor import Actor
from access.services import authorize
from alerts import channels
from alerts.models import Channel, ChannelKind
from common.api import (
    BODY_ERRORS,
    COMMON_ERRORS,
    PAGE_PARAMETERS,
    Pagination,
    StrictBooleanField,
    StrictCharField,
    StrictInputSerializer,
    error_responses,
    paginated,
    request_object,
)


class ChannelOutputSerializer(serializers.ModelSerializer):
    url = serializers.CharField(source="display", help_text="Scheme and host only")
    functions = serializers.SlugRelatedField(many=True, read_only=True, slug_field="name")

    class Meta:
        model = Channel
        fields = ["id", "name", "kind", "url", "is_default", "functions", "created_at"]


class ChannelCreatedSerializer(ChannelOutputSerializer):
    secret = serializers.CharField(help_text="The webhook's signing secret, shown only here")

    class Meta(ChannelOutputSerializer.Meta):
        fields = [*ChannelOutputSerializer.Meta.fields, "secret"]


class ChannelListApi(APIView):
    @extend_schema_serializer(component_name="ChannelInput")
    class CreateInputSerializer(StrictInputSerializer):
        name = StrictCharField(max_length=100, min_length=1)
        kind = serializers.ChoiceField(choices=ChannelKind.values)
        url = StrictCharField(max_length=2000, min_length=1)
        is_default = StrictBooleanField(required=False, default=False)
        functions = serializers.ListField(
            child=StrictCharField(max_length=63, min_length=1), required=False, max_length=100
        )

    @extend_schema(
        operation_id="channels_list",
        summary="List alert channels (URLs as scheme and host only)",
        tags=["alerts"],
        parameters=PAGE_PARAMETERS,
        responses={
            200: paginated(ChannelOutputSerializer, "ChannelPage"),
            **error_responses(*COMMON_ERRORS),
        },
    )
    def get(self, request):
        listed = Channel.objects.prefetch_related("functions").order_by("name")
        return Pagination.respond(request, self, listed, ChannelOutputSerializer)

    @extend_schema(
        operation_id="channels_create",
        summary="Add an alert channel: an apprise URL, or a signed JSON webhook (admin scope)",
        description="Two rules no schema can state are checked here, and a body that breaks "
        "them is refused (400): the URL must be one Apprise accepts (for a webhook, an http or "
        "https URL), and every name in functions must be a deployed function.",
        tags=["alerts"],
        request=CreateInputSerializer,
        responses={
            201: ChannelCreatedSerializer,
            **error_responses(*COMMON_ERRORS, *BODY_ERRORS, 409),
        },
    )
    def post(self, request):
        actor = Actor.of_request(request)
        authorize(actor, channels.MANAGE_CHANNELS)
        serializer = self.CreateInputSerializer(
            data=request_object(request, self.CreateInputSerializer().fields)
        )
        serializer.is_valid(raise_exception=True)
        data = serializer.validated_data
        channel, secret = channels.channel_create(
            name=data["name"],
            kind=data["kind"],
            url=data["url"],
            is_default=data["is_default"],
            functions=channels.functions_named(data.get("functions", [])),
            actor=actor,
            now=timezone.now(),
        )
        channel.secret = secret
        return Response(ChannelCreatedSerializer(channel).data, status=status.HTTP_201_CREATED)


CHANNEL_ID = OpenApiParameter("id", int, OpenApiParameter.PATH, description="The channel's id")


class ChannelApi(APIView):
    @extend_schema(
        operation_id="channels_delete",
        summary="Delete an alert channel (admin scope)",
        tags=["alerts"],
        parameters=[CHANNEL_ID],
        responses={204: None, **error_responses(*COMMON_ERRORS, 404)},
    )
    def delete(self, request, id: int):
        actor = Actor.of_request(request)
        authorize(actor, channels.MANAGE_CHANNELS)
        channel = Channel.objects.filter(pk=id).first()
        if channel is None:
            raise NotFound(f"there is no channel {id}", code="not_found")
        channels.channel_delete(channel=channel, actor=actor, now=timezone.now())
        return Response(status=status.HTTP_204_NO_CONTENT)
