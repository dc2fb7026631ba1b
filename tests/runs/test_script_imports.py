"""A script that imports its own modules, deployed by running it and run on real workers: the
modules beside it ship with it and import in the run, with no add_local_python_source."""

import os
import subprocess
import sys

import pytest
from django.utils import timezone

from runs.models import LogLine
from runs.services import run_trigger
from scheduling.models import Function
from tests.personas import acting, make_token
from tests.runs.support import wait_for_run

pytestmark = pytest.mark.slow

JOB = """
import chalkcompute
from rates import convert


@chalkcompute.function()
def refresh_rates() -> None:
    from report import line  # imported only in the run

    print(line(convert(10)))
"""


def test_the_modules_a_script_imports_from_its_folder_import_in_the_run(platform, tmp_path):
    (tmp_path / "job.py").write_text(JOB)
    (tmp_path / "rates").mkdir()
    (tmp_path / "rates" / "__init__.py").write_text("from rates.table import convert\n")
    (tmp_path / "rates" / "table.py").write_text("def convert(eur):\n    return eur * 1.1\n")
    (tmp_path / "report.py").write_text("import fmt\n\ndef line(usd):\n    return fmt.usd(usd)\n")
    (tmp_path / "fmt.py").write_text("def usd(amount):\n    return f'{amount:.2f} USD'\n")
    platform.start_workers()
    _, token = make_token("imports")
    env = {**os.environ, "CHALK_COMPUTE_URL": platform.env["CHALK_PUBLIC_URL"],
           "CHALK_COMPUTE_TOKEN": token}  # fmt: skip

    deployed = subprocess.run(
        [sys.executable, "job.py"], env=env, cwd=tmp_path, capture_output=True, text=True,
        timeout=120,
    )  # fmt: skip

    assert deployed.returncode == 0, deployed.stdout + deployed.stderr
    assert "  imports    fmt.py, rates/, report.py:" in deployed.stdout
    function = Function.objects.get(name="refresh-rates")
    run = run_trigger(function=function, trigger="manual", actor=acting("test"), now=timezone.now())
    run = wait_for_run(run.id, timeout=120)
    texts = list(LogLine.objects.filter(attempt__run=run).values_list("text", flat=True))
    assert run.status == "succeeded", (run.status_reason, texts)
    assert "11.00 USD" in texts
