"""REST endpoints for secrets. Reads return names and timestamps, never values."""

from django.utils import timezone
from drf_spectacular.utils import OpenApiParameter, extend_schema, extend_schema_serializer
from rest_framework import serializers, status
from rest_framework.exceptions import NotFound
from rest_framework.response import Response
from rest_framework.views import APIView

from chalkcompute.names import InvalidNameError, check_secret_name
from common.api import (
    ApiError,
    ErrorSerializer,
    Pagination,
    StrictCharField,
    paginated,
    request_object,
)
from scheduling import services
from scheduling.models import Secret

ERRORS = {400: ErrorSerializer, 401: ErrorSerializer, 404: ErrorSerializer}


class SecretOutputSerializer(serializers.Serializer):
    name = serializers.CharField()
    created_at = serializers.DateTimeField()
    updated_at = serializers.DateTimeField()


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


# One APIView per URL: the REST contract puts PUT, GET and DELETE on one URL, and each method
# below is one operation.


class SecretListApi(APIView):
    @extend_schema(
        operation_id="secrets_list",
        summary="List secrets (names and times, never values)",
        tags=["secrets"],
        parameters=[
            OpenApiParameter("limit", int, description="Page size (default 100, at most 1000)"),
            OpenApiParameter("offset", int, description="Items to skip"),
        ],
        responses={200: paginated(SecretOutputSerializer, "SecretPage"), **ERRORS},
    )
    def get(self, request):
        paginator = Pagination()
        page = paginator.paginate_queryset(Secret.objects.order_by("name"), request, view=self)
        return paginator.get_paginated_response(SecretOutputSerializer(page, many=True).data)


class SecretApi(APIView):
    @extend_schema_serializer(component_name="SecretInput")
    class PutInputSerializer(serializers.Serializer):
        # Blank passes here so the service's one rule (and message) refuses it; the schema
        # still says minLength 1.
        value = StrictCharField(
            trim_whitespace=False,
            allow_blank=True,
            error_messages={"required": "is required: the secret's value, as a string"},
        )

    @extend_schema(
        operation_id="secrets_get",
        summary="Read a secret's name and times (never its value)",
        tags=["secrets"],
        parameters=[NAME],
        responses={200: SecretOutputSerializer, **ERRORS},
    )
    def get(self, request, name: str):
        return Response(SecretOutputSerializer(secret_or_404(name)).data)

    @extend_schema(
        operation_id="secrets_put",
        summary="Store a secret's value (201 created, 200 replaced)",
        tags=["secrets"],
        parameters=[NAME],
        request=PutInputSerializer,
        responses={200: SecretOutputSerializer, 201: SecretOutputSerializer, **ERRORS},
    )
    def put(self, request, name: str):
        name = secret_name_or_400(name)
        serializer = self.PutInputSerializer(
            data=request_object(request, self.PutInputSerializer().fields)
        )
        serializer.is_valid(raise_exception=True)
        secret, created = services.secret_set(
            name=name, value=serializer.validated_data["value"], now=timezone.now()
        )
        return Response(
            SecretOutputSerializer(secret).data,
            status=status.HTTP_201_CREATED if created else status.HTTP_200_OK,
        )

    @extend_schema(
        operation_id="secrets_delete",
        summary="Delete a secret no function's current version reads (409 otherwise)",
        tags=["secrets"],
        parameters=[NAME],
        responses={204: None, **ERRORS, 409: ErrorSerializer},
    )
    def delete(self, request, name: str):
        services.secret_delete(secret=secret_or_404(name))
        return Response(status=status.HTTP_204_NO_CONTENT)
