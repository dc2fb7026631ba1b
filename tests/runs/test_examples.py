"""The examples in `examples/`, as the README tells a user to try them: each script deploys
itself to a running platform, and a run of each ends `succeeded` with the log lines the
function writes. Real workers, the real SDK, the real image build (`pip install requests`)."""

import os
import subprocess
import sys
from pathlib import Path

import pytest

from runs.models import LogLine
from tests.personas import make_token
from tests.runs.support import wait_for_run

REPO = Path(__file__).resolve().parents[2]

pytestmark = pytest.mark.slow

EXAMPLES = {
    "hello.py": ("hello", "hello from Chalkweb"),
    "nightly_rollup.py": ("nightly-rollup", "rolled up 1000 events for "),
    "refresh_exchange_rates.py": ("refresh-exchange-rates", "refreshed 4 rates"),
}


def test_every_example_deploys_itself_and_runs_to_success(platform, tmp_path):
    platform.start_workers(concurrency=len(EXAMPLES))
    _, token = make_token("examples")
    env = {
        **os.environ,
        "CHALK_COMPUTE_URL": platform.env["CHALK_PUBLIC_URL"],
        "CHALK_COMPUTE_TOKEN": token,
        "EXCHANGE_API_KEY": "demo-key",  # refresh_exchange_rates.py's Secret.from_env
    }

    def sdk(*args: str) -> str:
        result = subprocess.run(
            [sys.executable, *args], env=env, cwd=tmp_path, capture_output=True, text=True,
            timeout=120,
        )  # fmt: skip
        assert result.returncode == 0, result.stdout + result.stderr
        return result.stdout

    runs = {}
    for script, (name, _) in EXAMPLES.items():
        assert f"Deployed {name}: version 1" in sdk(str(REPO / "examples" / script))
        started = sdk("-m", "chalkcompute.cli", "run", name)
        runs[name] = int(started.split()[2])  # "Started run N of …"

    for name, expected in EXAMPLES.values():
        run = wait_for_run(runs[name], timeout=180)
        texts = list(
            LogLine.objects.filter(attempt__run=run).order_by("seq").values_list("text", flat=True)
        )
        assert run.status == "succeeded", (run.status_reason, texts)
        assert any(text.startswith(expected) for text in texts), texts
