"""Which Chalkweb a process runs (its version and the newest migration of each app), and how
it compares with the database's and with another process's: what a process refuses to run
beside (runs/worker.py, the web's start), what its heartbeat and its task messages say about
it, and what /readyz and the Platform page say about processes of another version."""

import re

from chalkcompute.version import VERSION
from common.database import (
    code_migrations,
    newer_migrations_applied,
    older_than_database_sentence,
    unknown_migrations,
)

BEAT_COMPONENT = "beat-process"  # "beat" is the tick's row, recorded by the worker that ran it
CODE_HEADER = "chalkweb"  # in every task message: the sender's this_code()
UPGRADE = "upgrade this machine's Chalkweb (git pull && make install) and start it again"


def this_code() -> dict:
    """What this process runs: its Chalkweb version and the newest migration of each app."""
    return {"version": VERSION, "migrations": code_migrations()}


def version_key(version: str) -> tuple[int, ...]:
    """ "1.10.0" > "1.9.2": versions are X.Y.Z (README, "Releases")."""
    return tuple(int(part) for part in re.findall(r"\d+", version)[:3])


def older_than_database() -> str | None:
    """The sentence to refuse with when this code is older than the database; None when it
    may run, or when the database does not answer (/readyz says that)."""
    newer = newer_migrations_applied()
    return older_than_database_sentence(VERSION, newer) if newer else None


def sent_by_newer_code(headers: dict | None) -> str | None:
    """Why a task message with these headers comes from a Chalkweb newer than this one (a
    higher version, or migrations this code does not know), in a sentence; None when it does
    not (a message without CODE_HEADER comes from a Chalkweb older than the header)."""
    sender = (headers or {}).get(CODE_HEADER)
    if not isinstance(sender, dict):
        return None
    version = str(sender.get("version", ""))
    newer = unknown_migrations(sender.get("migrations") or [])
    if not newer and version_key(version) <= version_key(VERSION):
        return None
    what = f"Chalkweb {version}" + (f" (with migrations {', '.join(newer[:3])})" if newer else "")
    return (
        f"this machine's Chalkweb {VERSION} is older than the {what} that sent it the task "
        f"{headers.get('task', '?')}: the task is put back in its queue for a worker of that "
        f"version; {UPGRADE}"
    )


def beside_this_one(name: str, detail: dict) -> str | None:
    """What to say of a process (`name`, its heartbeat's detail) whose code is not this one's;
    None when it runs the same."""
    version = detail.get("version")
    if version is None:  # its heartbeat says no version: older than versions in heartbeats
        return (
            f"{name} runs an older Chalkweb (its heartbeat names no version) beside {VERSION}: "
            "upgrade or stop it"
        )
    if version_key(version) < version_key(VERSION):
        return f"{name} runs Chalkweb {version} beside {VERSION}: upgrade or stop it"
    if version_key(version) > version_key(VERSION):
        return (
            f"{name} runs Chalkweb {version}, newer than this web's {VERSION}: upgrade this "
            "web's machine"
        )
    if sorted(detail.get("migrations") or []) != code_migrations():
        return (
            f"{name} runs another build of Chalkweb {version} (its migrations differ from this "
            "web's): upgrade the older one, or stop it"
        )
    return None
