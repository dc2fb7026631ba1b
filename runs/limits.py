"""The limits every run is held to, whatever it asks for: one door for the local executor,
the runner API (which tells the runner) and admission."""

from django.conf import settings

from chalkcompute.quantities import parse_memory, parse_quantity


def run_memory_limit(memory: str | None) -> int:
    """Bytes a local run holds and may use: its `memory=`, else CHALK_LOCAL_DEFAULT_MEMORY.
    Admission holds it and the runner stops the run past it, so no run uses memory it was
    not given."""
    text = parse_memory(memory or settings.CHALK_LOCAL_DEFAULT_MEMORY)
    return int(parse_quantity(text, "memory"))


def run_timeout(timeout: float | None) -> float:
    """Seconds a run may take: its `timeout=`, else CHALK_RUN_DEFAULT_TIMEOUT_SECONDS, so that
    no run holds what admission gave it for ever."""
    return timeout or settings.CHALK_RUN_DEFAULT_TIMEOUT_SECONDS
