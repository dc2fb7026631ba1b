"""`deploy/kubernetes/smoke.sh`, the script an operator runs against a real cluster, run here
against real workers on the local executor: there is no cluster here, but the script's
mechanics (deploy with the SDK, trigger over REST, cancel a running run, compare statuses) and
the six outcomes it expects are the same on both executors."""

import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.personas import make_token

REPO = Path(__file__).resolve().parents[2]

pytestmark = pytest.mark.slow


def test_the_smoke_script_sees_all_six_outcomes_it_expects(platform):
    platform.start_workers(concurrency=6)  # the six runs at once, as a cluster would
    _, token = make_token("smoke")

    result = subprocess.run(
        ["bash", str(REPO / "deploy" / "kubernetes" / "smoke.sh")],
        env={
            **os.environ,
            "CHALK_COMPUTE_URL": platform.env["CHALK_PUBLIC_URL"],
            "CHALK_COMPUTE_TOKEN": token,
            "PYTHON": sys.executable,
            "SMOKE_DEADLINE_SECONDS": "180",
        },
        capture_output=True,
        text=True,
        timeout=300,
    )

    assert result.returncode == 0, result.stdout + result.stderr
    assert "All six runs ended as expected." in result.stdout
