"""Errors the scheduling services raise. Each carries a snake_case `code` and a message a person
can act on; the REST API turns them into `{"error": code, "detail": message}`."""


class SchedulingError(ValueError):
    code = "invalid_request"

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


class InvalidDeployError(SchedulingError):
    code = "invalid_request"


class SourceTooLargeError(SchedulingError):
    code = "source_too_large"


class UnknownSecretError(SchedulingError):
    code = "unknown_secret"


class SecretInUseError(SchedulingError):
    code = "secret_in_use"


class InvalidSecretValueError(SchedulingError):
    code = "invalid_value"


class InvalidTokenNameError(SchedulingError):
    code = "invalid_name"


class UnknownVersionError(SchedulingError):
    code = "unknown_version"
