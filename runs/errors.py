"""Errors the runs services raise, in the one error shape of every service (ServiceError)."""

from common.errors import ServiceError


class RunError(ServiceError):
    code = "invalid_request"


class NotDeployedError(RunError):
    code = "not_deployed"
    status = 409


NOT_DEPLOYED = "{name} has no deployed version to run; deploy it first."
