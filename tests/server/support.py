"""What the deploy tests share: a module source, request bodies and a snapshot of row counts."""

import hashlib
import os
import subprocess
import sys
from pathlib import Path

from access.models import ApiToken
from scheduling.models import Function, FunctionVersion, Image, Secret

PUBLIC_URL = "https://chalk.example.com"

RATES_SOURCE = """import chalkcompute

image = chalkcompute.Image.debian_slim().pip_install("requests")


@chalkcompute.function(name="refresh-rates", schedule="0 * * * *", image=image, retries=3)
def refresh_rates() -> None:
    print("refreshing")
"""
RATES_SPEC = {
    "base": "debian_slim",
    "python_version": "3.11",
    "steps": [{"pip_install": ["requests"]}],
}
DEFAULT_SPEC = {"base": "debian_slim", "python_version": "3.11", "steps": []}
DEFAULT_RETRIES = {
    "max_retries": 0,
    "backoff_coefficient": 2.0,
    "initial_delay": 1.0,
    "max_delay": 60.0,
}


def sha256(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()


def spec_hash(spec: dict) -> str:
    from chalkcompute.image import Image as ImageSpec

    return ImageSpec.from_spec(spec).spec_hash


def deploy_body(**overrides) -> dict:
    """The body the SDK sends for refresh_rates.py, with `overrides` applied."""
    body = {
        "source": RATES_SOURCE,
        "source_filename": "refresh_rates.py",
        "entrypoint": "refresh_rates",
        "schedule": "0 * * * *",
        "image": RATES_SPEC,
        "secrets": [],
        "cpu": "1",
        "memory": "1Gi",
        "gpu": None,
        "retries": {
            "max_retries": 3,
            "backoff_coefficient": 2.0,
            "initial_delay": 1.0,
            "max_delay": 60.0,
        },
        "timeout": 600,
        "overlap": "skip",
    }
    body.update(overrides)
    return body


def rates_document(**overrides) -> dict:
    """The function document of refresh-rates as first deployed at NOW (tests/support.py)
    with deploy_body()."""
    document = {
        "name": "refresh-rates",
        "version": 1,
        "schedule": "0 * * * *",
        "cron": "0 * * * *",
        "timezone": None,
        "schedule_description": "every hour, on the hour",
        "next_fire_at": "2026-11-29T00:00:00Z",
        "next_runs": ["2026-11-29T00:00:00Z", "2026-11-29T01:00:00Z", "2026-11-29T02:00:00Z"],
        "upcoming": None,  # the next runs with their local times, filled in below
        "paused": False,
        "paused_at": None,
        "paused_by": None,
        "paused_reason": None,
        "image": {"spec_hash": spec_hash(RATES_SPEC), "spec": RATES_SPEC},
        "secrets": [],
        "cpu": "1",
        "memory": "1Gi",
        "gpu": None,
        "retries": {
            "max_retries": 3,
            "backoff_coefficient": 2.0,
            "initial_delay": 1.0,
            "max_delay": 60.0,
        },
        "timeout": 600.0,
        "overlap": "skip",
        "env": {},
        "tags": {},
        "alerts": {
            "on_failure": [],
            "after_failures": None,
            "on_recovery": None,
            "late_after": None,
            "running_after": None,
            "on_skip": None,
            "remind_every": None,
        },
        "entrypoint": "refresh_rates",
        "source_filename": "refresh_rates.py",
        "source_sha256": sha256(RATES_SOURCE),
        "files": [],
        "created_at": "2026-11-28T23:30:00Z",
        "updated_at": "2026-11-28T23:30:00Z",
        "console_url": f"{PUBLIC_URL}/functions/refresh-rates",
    }
    document.update(overrides)
    if "deploy" in overrides:  # a deploy's answer
        document.setdefault("warnings", [])
    if document["upcoming"] is None:  # a UTC schedule: the local times are the UTC ones
        document["upcoming"] = [
            {"at": at, "local": at.replace("Z", "+00:00"), "note": None}
            for at in document["next_runs"]
        ]
    return document


def row_counts() -> dict[str, int]:
    return {
        model.__name__: model.objects.count()
        for model in (Function, FunctionVersion, Image, Secret, ApiToken)
    }


class ChalkServer:
    """The live test server as the SDK sees it: its URL and an API token, and a way to run
    Python (scripts, the chalkcompute command) against it in a subprocess."""

    def __init__(self, url: str, token: str) -> None:
        self.url = url
        self.token = token

    def env(self, **overrides: str | None) -> dict[str, str]:
        env = {
            **os.environ,
            "CHALK_COMPUTE_URL": self.url,
            "CHALK_COMPUTE_TOKEN": self.token,
            "NO_PROXY": "127.0.0.1,localhost",
        }
        env.pop("CHALK_IN_RUN", None)
        for name, value in overrides.items():
            if value is None:
                env.pop(name, None)
            else:
                env[name] = value
        return env

    def python(self, *args: str, cwd=None, **env: str | None):
        """Runs the venv's python with `args`; returns the CompletedProcess."""
        return subprocess.run(
            [sys.executable, *args],
            cwd=cwd,
            env=self.env(**env),
            capture_output=True,
            text=True,
            timeout=60,
        )

    def chalkcompute(self, *args: str, cwd=None, **env: str | None):
        """Runs the `chalkcompute` command installed next to the venv's python."""
        return subprocess.run(
            [str(Path(sys.executable).with_name("chalkcompute")), *args],
            cwd=cwd,
            env=self.env(**env),
            capture_output=True,
            text=True,
            timeout=60,
        )


def utc_minutes(moments) -> str:
    """Fire times as the SDK prints them: "2026-11-29 00:00 UTC, ..."."""
    return ", ".join(moment.strftime("%Y-%m-%d %H:%M UTC") for moment in moments)
