"""`chalkcompute deploy FILE` and `chalkcompute ls`, and the SDK without Django."""

import subprocess
import sys
import textwrap
from datetime import timedelta
from pathlib import Path

import pytest

from scheduling.models import Function
from tests.personas import make_token
from tests.server.support import ChalkServer, utc_minutes

TWO_JOBS = """
import chalkcompute
from chalkcompute import Image

image = Image.debian_slim().pip_install("requests")


@chalkcompute.function(name="refresh-rates", schedule="0 * * * *", image=image, cpu="1")
def refresh_rates() -> None:
    pass


@chalkcompute.function(name="rebuild-index")
def rebuild_index() -> None:
    pass


if __name__ == "__main__":
    print("main block ran")
"""


@pytest.fixture
def chalk(live_server, settings) -> ChalkServer:
    settings.CHALK_PUBLIC_URL = live_server.url
    _, token = make_token("cli-tests")
    return ChalkServer(live_server.url, token)


@pytest.fixture
def jobs(tmp_path) -> Path:
    path = tmp_path / "jobs.py"
    path.write_text(TWO_JOBS)
    return path


def test_it_deploys_every_function_of_a_file(chalk, jobs):
    result = chalk.chalkcompute("deploy", str(jobs))

    assert (result.returncode, result.stderr) == (0, "")
    rates = Function.objects.get(name="refresh-rates")
    next_runs = [rates.next_fire_at + timedelta(hours=n) for n in range(3)]
    assert result.stdout.splitlines() == [
        "Deployed refresh-rates: version 1",
        "  schedule   every hour, on the hour (0 * * * *, UTC)",
        f"  next runs  {utc_minutes(next_runs)}",
        f"  console    {chalk.url}/functions/refresh-rates",
        "Deployed rebuild-index: version 1",
        "  schedule   on demand (no schedule)",
        f"  console    {chalk.url}/functions/rebuild-index",
    ]
    assert "main block ran" not in result.stdout
    assert rates.current_version.source == TWO_JOBS
    assert rates.current_version.source_filename == "jobs.py"


def test_it_says_unchanged_when_deploying_a_file_again(chalk, jobs):
    chalk.chalkcompute("deploy", str(jobs))

    result = chalk.chalkcompute("deploy", str(jobs))

    assert result.returncode == 0
    summaries = [line for line in result.stdout.splitlines() if not line.startswith(" ")]
    assert summaries == [
        "refresh-rates: unchanged (version 1)",
        "rebuild-index: unchanged (version 1)",
    ]


def test_it_explains_a_file_without_functions(chalk, tmp_path):
    empty = tmp_path / "empty.py"
    empty.write_text("import chalkcompute\n")

    result = chalk.chalkcompute("deploy", str(empty))

    assert (result.returncode, result.stdout) == (1, "")
    assert result.stderr == (
        f"chalkcompute: {empty} declares no function with @chalkcompute.function at its top level\n"
    )


def test_it_explains_a_missing_file(chalk, tmp_path):
    result = chalk.chalkcompute("deploy", "nowhere.py", cwd=tmp_path)

    assert (result.returncode, result.stderr) == (
        1,
        "chalkcompute: nowhere.py is not a file; give the path of a Python script\n",
    )


def test_it_explains_an_invalid_declaration(chalk, tmp_path):
    bad = tmp_path / "bad.py"
    bad.write_text(
        "import chalkcompute\n\n"
        "@chalkcompute.function(schedule='90m')\n"
        "def warm_cache() -> None:\n"
        "    pass\n"
    )

    result = chalk.chalkcompute("deploy", str(bad))

    assert result.returncode == 1
    assert result.stderr.startswith(
        'chalkcompute: @chalkcompute.function on warm_cache: invalid schedule "90m": 90 minutes'
    )
    assert not Function.objects.exists()


def test_it_lists_functions(chalk, jobs):
    chalk.chalkcompute("deploy", str(jobs))
    rates = Function.objects.get(name="refresh-rates")

    result = chalk.chalkcompute("ls")

    assert (result.returncode, result.stderr) == (0, "")
    next_run = utc_minutes([rates.next_fire_at])
    assert result.stdout.splitlines() == [
        "NAME           SCHEDULE                             NEXT RUN              PAUSED",
        "rebuild-index  on demand                            -                     no",
        f"refresh-rates  every hour, on the hour (0 * * * *)  {next_run}  no",
    ]


def test_it_explains_an_unreachable_server_when_listing(chalk):
    result = chalk.chalkcompute("ls", CHALK_COMPUTE_URL="http://127.0.0.1:9")

    assert result.returncode == 1
    assert result.stderr.startswith(
        "chalkcompute: Cannot reach the Chalkweb server at http://127.0.0.1:9 ("
    )


BLOCK_DJANGO = """
import sys


class BlockDjango:
    def find_spec(self, name, path=None, target=None):
        if name == "django" or name.startswith("django."):
            raise ModuleNotFoundError(f"No module named {name!r} (blocked by the test)")
        return None


sys.meta_path.insert(0, BlockDjango())
try:
    import django  # noqa: F401
except ModuleNotFoundError:
    print("django is blocked")

import chalkcompute
import chalkcompute.cli
import chalkcompute.client
import chalkcompute.deploy
import job

assert not [name for name in sys.modules if name.split(".")[0] in ("django", "rest_framework")]
print(job.warm_cache.name, job.warm_cache.schedule.cron, job.warm_cache())
"""


def test_it_imports_the_sdk_without_django(tmp_path):
    (tmp_path / "job.py").write_text(
        textwrap.dedent(
            """
            import chalkcompute

            @chalkcompute.function(schedule="10m")
            def warm_cache() -> str:
                return "warmed"
            """
        )
    )

    result = subprocess.run(
        [sys.executable, "-c", BLOCK_DJANGO],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=60,
    )

    assert (result.returncode, result.stderr) == (0, "")
    assert result.stdout.splitlines() == ["django is blocked", "warm-cache */10 * * * * warmed"]
