"""REST endpoints for secrets. Reads return names and timestamps, never values."""

from django.utils import timezone
from drf_spectacular.utils import (
    OpenApiParameter,
    extend_schema,
    extend_schema_field,
    extend_schema_serializer,
)
from rest_framework import serializers, status
from rest_framework.exceptions import NotFound
from rest_framework.fields import empty
from rest_framework.response import Response
from rest_framework.views import APIView

from access.actor import Actor
from chalkcompute.names import InvalidNameError, check_secret_name
from common.api import (
    BODY_ERRORS,
    COMMON_ERRORS,
    PAGE_PARAMETERS,
    ApiError,
    Pagination,
    StrictCharField,
    StrictInputSerializer,
    error_responses,
    paginated,
    request_object,
)
from scheduling import services
from scheduling.models import Secret
from scheduling.services import MAX_SECRET_VALUE_BYTES


class SecretOutputSerializer(serializers.Serializer):
    name = serializers.CharField()
    created_at = serializers.DateTimeField()
    updated_at = serializers.DateTimeField()


class SecretPutOutputSerializer(SecretOutputSerializer):
    change = serializers.ChoiceField(
        choices=["created", "replaced", "unchanged"],
        help_text="unchanged: the value stored was this one already (nothing was written)",
    )


def secret_name_or_400(name: str) -> str:
    try:
        return check_secret_name(name)
    except InvalidNameError as exc:
        raise ApiError(400, "invalid_name", str(exc)) from None


def secret_or_404(name: str) -> Secret:
    secret = Secret.objects.filter(name=secret_name_or_400(name)).first()
    if secret is None:
        raise NotFound(
            f"no secret named {name!r} is stored here; store it with PUT /api/v1/secrets/{name}",
            code="not_found",
        )
    return secret


NAME = OpenApiParameter(
    "name",
    {"type": "string", "pattern": "^[A-Za-z_][A-Za-z0-9_]*$", "maxLength": 128},
    OpenApiParameter.PATH,
    description='The secret\'s name, the environment variable a run sees, e.g. "API_KEY"',
)


@extend_schema_field(
    {
        "type": "string",
        "minLength": 1,
        # A bound on characters; the server's is MAX_SECRET_VALUE_BYTES of UTF-8.
        "maxLength": MAX_SECRET_VALUE_BYTES,
        "description": f"The value, at most {MAX_SECRET_VALUE_BYTES} bytes of UTF-8, not empty "
        "and without NUL characters (an environment variable carries it)",
    }
)
class SecretValueField(StrictCharField):
    """Lets a blank value through so the service's one rule (check_secret_value) refuses it
    with its own message; the schema still declares minLength 1. (Not allow_blank=True: that
    would add a blank alternative to the schema.)"""

    def run_validation(self, data=empty):
        if data == "":
            return data
        return super().run_validation(data)


# One APIView per URL: the REST contract puts PUT, GET and DELETE on one URL, and each method
# below is one operation.


class SecretListApi(APIView):
    @extend_schema(
        operation_id="secrets_list",
        summary="List secrets (names and times, never values)",
        tags=["secrets"],
        parameters=PAGE_PARAMETERS,
        responses={
            200: paginated(SecretOutputSerializer, "SecretPage"),
            **error_responses(*COMMON_ERRORS),
        },
    )
    def get(self, request):
        return Pagination.respond(
            request, self, Secret.objects.order_by("name"), SecretOutputSerializer
        )


class SecretApi(APIView):
    @extend_schema_serializer(component_name="SecretInput")
    class PutInputSerializer(StrictInputSerializer):
        value = SecretValueField(
            trim_whitespace=False,
            error_messages={"required": "is required: the secret's value, as a string"},
        )

    @extend_schema(
        operation_id="secrets_get",
        summary="Read a secret's name and times (never its value)",
        tags=["secrets"],
        parameters=[NAME],
        responses={200: SecretOutputSerializer, **error_responses(*COMMON_ERRORS, 404)},
    )
    def get(self, request, name: str):
        return Response(SecretOutputSerializer(secret_or_404(name)).data)

    @extend_schema(
        operation_id="secrets_put",
        summary="Store a secret's value (201 created, 200 replaced or unchanged)",
        tags=["secrets"],
        parameters=[NAME],
        request=PutInputSerializer,
        responses={
            200: SecretPutOutputSerializer,
            201: SecretPutOutputSerializer,
            **error_responses(*COMMON_ERRORS, *BODY_ERRORS),
        },
    )
    def put(self, request, name: str):
        name = secret_name_or_400(name)
        serializer = self.PutInputSerializer(
            data=request_object(request, self.PutInputSerializer().fields)
        )
        serializer.is_valid(raise_exception=True)
        now = timezone.now()
        secret, created = services.secret_set(
            name=name,
            value=serializer.validated_data["value"],
            actor=Actor.of_request(request),
            now=now,
        )
        # The deploy of a from_env secret says which of these it was, so a different stored
        # value is never replaced without a word.
        change = "created" if created else "replaced" if secret.updated_at == now else "unchanged"
        return Response(
            {**SecretOutputSerializer(secret).data, "change": change},
            status=status.HTTP_201_CREATED if created else status.HTTP_200_OK,
        )

    @extend_schema(
        operation_id="secrets_delete",
        summary="Delete a secret no function's current version reads (409 otherwise)",
        tags=["secrets"],
        parameters=[NAME],
        responses={204: None, **error_responses(*COMMON_ERRORS, 404, 409)},
    )
    def delete(self, request, name: str):
        services.secret_delete(
            secret=secret_or_404(name), actor=Actor.of_request(request), now=timezone.now()
        )
        return Response(status=status.HTTP_204_NO_CONTENT)
