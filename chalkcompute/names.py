"""Names users choose: function names (DNS labels) and secret names (environment variables).

Each rule matches the whole name (`fullmatch`): with `match`, `$` also matches before a
trailing newline, and "leak\n" would pass as a twin of "leak".
"""

import re

from chalkcompute.errors import FunctionError

_DNS_LABEL = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$")
ENV_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
MAX_FUNCTION_NAME = 63  # a DNS label: it names Kubernetes Jobs and labels
MAX_SECRET_NAME = 128
# check_secret_name's rule as the API document states it (an env variable's name too).
ENV_NAME_SCHEMA = {"type": "string", "pattern": ENV_NAME.pattern, "maxLength": MAX_SECRET_NAME}


class InvalidNameError(FunctionError, ValueError):
    pass


def function_name_from(python_name: str) -> str:
    """The name a function gets from its Python name, as Chalk's SDK makes a DNS label of it:
    lowercase, `_` and `.` become `-`, other characters go, runs of `-` become one, no `-` at
    either end, at most 63 characters. "" when nothing is left (e.g. a name of only `_`)."""
    name = python_name.lower().replace("_", "-").replace(".", "-")
    name = re.sub(r"-{2,}", "-", re.sub(r"[^a-z0-9-]", "", name)).strip("-")
    return name[:MAX_FUNCTION_NAME].rstrip("-")


def check_function_name(name: object) -> str:
    if not isinstance(name, str) or not name:
        raise InvalidNameError(f"function name {name!r} must be a non-empty string")
    if len(name) > MAX_FUNCTION_NAME:
        raise InvalidNameError(
            f"function name {name[:MAX_FUNCTION_NAME]!r}… is {len(name)} characters; "
            f"use at most {MAX_FUNCTION_NAME}"
        )
    if not _DNS_LABEL.fullmatch(name):
        raise InvalidNameError(
            f"function name {name!r} is not a DNS label: use lowercase letters, digits and '-', "
            'starting and ending with a letter or digit, e.g. "refresh-exchange-rates"'
        )
    return name


def check_secret_name(name: object) -> str:
    if not isinstance(name, str) or not name:
        raise InvalidNameError(f"secret name {name!r} must be a non-empty string")
    if len(name) > MAX_SECRET_NAME or not ENV_NAME.fullmatch(name):
        raise InvalidNameError(
            f"secret name {name[:MAX_SECRET_NAME]!r} must be usable as an environment variable: "
            f"letters, digits and '_', not starting with a digit, at most {MAX_SECRET_NAME} "
            'characters, e.g. "EXCHANGE_API_KEY"'
        )
    return name
