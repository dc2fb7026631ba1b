"""The audit trail over the REST API (admin scope): GET /api/v1/audit, newest first."""

from drf_spectacular.utils import OpenApiParameter, extend_schema
from rest_framework import serializers
from rest_framework.views import APIView

from access.actor import Actor
from access.models import AuditAction, AuditEvent
from access.rights import Right
from access.selectors import audit_events
from access.services import authorize
from common.api import (
    COMMON_ERRORS,
    PAGE_PARAMETERS,
    ApiError,
    Pagination,
    error_responses,
    paginated,
)


class AuditEventOutputSerializer(serializers.ModelSerializer):
    class Meta:
        model = AuditEvent
        fields = [
            "id",
            "at",
            "action",
            "actor",
            "token_name",
            "address",
            "function",
            "target",
            "detail",
        ]


class AuditListApi(APIView):
    @extend_schema(
        operation_id="audit_list",
        summary="Read the audit trail, newest first (admin scope)",
        tags=["audit"],
        parameters=[
            OpenApiParameter(
                "actor",
                {"type": "string", "minLength": 1, "maxLength": 150},
                description="Only this person's (a username)",
            ),
            OpenApiParameter(
                "function",
                {"type": "string", "minLength": 1, "maxLength": 63},
                description="Only this function's",
            ),
            OpenApiParameter("action", str, enum=AuditAction.values, description="Only this"),
            *PAGE_PARAMETERS,
        ],
        responses={
            200: paginated(AuditEventOutputSerializer, "AuditPage"),
            **error_responses(*COMMON_ERRORS),
        },
    )
    def get(self, request):
        authorize(Actor.of_request(request), Right.ADMIN)
        params = request.query_params
        for name, longest in (("actor", 150), ("function", 63), ("action", 32)):
            value = params.get(name)
            if value is not None and not 1 <= len(value) <= longest:
                raise ApiError(
                    400,
                    f"invalid_{name}",
                    f"{name} is 1 to {longest} characters; leave it out to see everyone's",
                )
        try:
            events = audit_events(
                actor=params.get("actor", ""),
                function=params.get("function", ""),
                action=params.get("action", ""),
            )
        except ValueError as exc:
            raise ApiError(400, "invalid_action", str(exc)) from None
        return Pagination.respond(request, self, events.order_by("-id"), AuditEventOutputSerializer)
