"""Errors the scheduling services raise. Each carries a snake_case `code` and a message a person
can act on; the REST API turns them into `{"error": code, "detail": message}`."""

from common.errors import ServiceError


class SchedulingError(ServiceError):
    code = "invalid_request"


class SourceTooLargeError(SchedulingError):
    code = "source_too_large"
    status = 413


class InvalidFilesError(SchedulingError):
    code = "invalid_files"


class UnknownSecretError(SchedulingError):
    code = "unknown_secret"


class SecretInUseError(SchedulingError):
    code = "secret_in_use"
    status = 409


class InvalidSecretNameError(SchedulingError):
    code = "invalid_name"


class InvalidSecretValueError(SchedulingError):
    code = "invalid_value"


class UnknownVersionError(SchedulingError):
    code = "unknown_version"
