"""Who may do what. Four roles, each a Django group holding rights; an API token carries
scopes, which are the same five words. Pure Python: the one table every check reads.

    role       rights
    viewer     read                          functions, runs, logs, usage, secrets' names
    operator   read run                      + pause/resume, run now, backfill, cancel, re-run
    deployer   read run deploy secrets       + deploy, roll back, delete; set/delete secrets
    admin      every right                   + everyone's tokens, people's roles, the audit trail
"""

from enum import StrEnum


class Right(StrEnum):
    READ = "read"
    RUN = "run"
    DEPLOY = "deploy"
    SECRETS = "secrets"
    ADMIN = "admin"


ROLES = ("viewer", "operator", "deployer", "admin")
ROLE_RIGHTS: dict[str, frozenset[Right]] = {
    "viewer": frozenset({Right.READ}),
    "operator": frozenset({Right.READ, Right.RUN}),
    "deployer": frozenset({Right.READ, Right.RUN, Right.DEPLOY, Right.SECRETS}),
    "admin": frozenset(Right),
}
# The least role that holds each right, for "this needs the operator role".
LEAST_ROLE = {right: next(r for r in ROLES if right in ROLE_RIGHTS[r]) for right in Right}

WHAT_IT_ALLOWS = {
    Right.READ: "see functions, runs, logs, usage and the names of secrets",
    Right.RUN: "pause, resume, run now, backfill, cancel and re-run",
    Right.DEPLOY: "deploy, roll back and delete functions",
    Right.SECRETS: "set and delete secrets",
    Right.ADMIN: "manage people's roles and everyone's API tokens, and read the audit trail",
}


def permission_name(right: Right) -> str:
    """The Django permission that grants `right` (access.Access's Meta.permissions)."""
    return f"access.{right.value}"


def parse_scopes(value: object) -> list[Right]:
    """A token's scopes from a list of words, in the order of Right; raises ValueError naming
    the unknown word."""
    if not isinstance(value, list | tuple) or not value:
        raise ValueError(
            "scopes is a non-empty list of: " + ", ".join(right.value for right in Right)
        )
    wanted = set()
    for word in value:
        try:
            wanted.add(Right(word))
        except ValueError:
            raise ValueError(
                f"{word!r} is not a scope; use any of: " + ", ".join(r.value for r in Right)
            ) from None
    return [right for right in Right if right in wanted]
