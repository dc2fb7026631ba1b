"""A job written in Chalk's documented style, deployed by running its script against a live
server and run on real workers: the list forms, a requirements file (one real pip install),
a helper module shipped with add_local_python_source, RetryPolicy.exponential, env= with a
secret, a standard-library logger, and a count-first GPU; started with Chalk's `.remote()`,
which returns what the function returned."""

import os
import subprocess
import sys
import textwrap

import pytest

from runs.models import LogLine, Run
from scheduling.models import Function
from tests.personas import make_token

pytestmark = pytest.mark.slow

JOB = """
import logging
import os

import chalkcompute
from chalkcompute import Image, RetryPolicy, Secret

image = (
    Image.debian_slim()
    .pip_install(["six"])
    .pip_install_from_requirements("requirements.txt")
    .add_local_python_source("helpers")
)


@chalkcompute.function(
    schedule="0 3 * * *",
    image=image,
    env={"MODE": "prod", "TOKEN": Secret.from_env("EXCHANGE_API_KEY")},
    retries=RetryPolicy.exponential(attempts=2, initial=0.5),
    cpu="1",
    memory="1Gi",
)
def refresh_rates() -> dict:
    import six

    import helpers

    logging.getLogger(__name__).info("mode %s, token %s", os.environ["MODE"], os.environ["TOKEN"])
    print(f"rates {helpers.rates()} with {six.__name__}")
    return {"rates": helpers.rates(), "token": os.environ["TOKEN"]}


@chalkcompute.function(schedule="0 4 * * *", gpu="2:nvidia-a100", cpu="4", memory="16Gi")
def nightly_batch_inference() -> None:
    pass
"""

HELPERS = """
import logging

log = logging.getLogger("helpers.rates")


def rates() -> dict:
    log.info("computing rates")
    log.debug("not shown: below INFO")
    return {"EUR": 0.9}
"""

CALLS = """
import chalkcompute
import job

try:
    job.nightly_batch_inference.remote()
except chalkcompute.RemoteExecutionError as exc:
    print("gpu run:", exc.status, exc)
print("refresh run returned:", job.refresh_rates.remote())
"""


def test_a_job_in_chalks_style_deploys_and_runs_with_its_files_secret_and_logs(platform, tmp_path):
    (tmp_path / "job.py").write_text(JOB)
    (tmp_path / "helpers.py").write_text(HELPERS)
    (tmp_path / "requirements.txt").write_text("# the job's own\nsix\n")
    platform.start_workers()
    _, token = make_token("parity")
    env = {
        **os.environ,
        "CHALK_COMPUTE_URL": platform.env["CHALK_PUBLIC_URL"],
        "CHALK_COMPUTE_TOKEN": token,
        "EXCHANGE_API_KEY": "laptop-exchange-key",
    }

    def python(*args: str) -> str:
        result = subprocess.run(
            [sys.executable, *args], env=env, cwd=tmp_path, capture_output=True, text=True,
            timeout=240,
        )  # fmt: skip
        assert result.returncode == 0, result.stdout + result.stderr
        return result.stdout

    deployed = python("job.py")
    assert "Deployed refresh-rates: version 1" in deployed
    assert "  uploaded   EXCHANGE_API_KEY from your environment: new on the server" in deployed
    assert "  files      1 (" in deployed
    assert "Deployed nightly-batch-inference: version 1" in deployed
    assert Function.objects.get(name="nightly-batch-inference").current_version.gpu == (
        "nvidia-a100:2"
    )

    called = python("-c", textwrap.dedent(CALLS))

    assert "gpu run: failed" in called and "has no GPU" in called and "nvidia-a100:2" in called
    assert called.endswith("refresh run returned: {'rates': {'EUR': 0.9}, 'token': '********'}\n")
    run = Run.objects.get(function__name="refresh-rates")
    lines = list(
        LogLine.objects.filter(attempt__run=run).order_by("seq").values_list("level", "text")
    )
    texts = [text for _, text in lines]
    assert ("INFO", "helpers.rates: computing rates") in lines, lines
    assert ("INFO", "job: mode prod, token ********") in lines, lines
    assert "rates {'EUR': 0.9} with six" in texts
    assert not any("laptop-exchange-key" in text or "not shown" in text for text in texts)
    assert run.version.retries["max_retries"] == 2
