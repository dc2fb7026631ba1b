"""The platform as production runs it: as an unprivileged user (deploy/systemd's
User=chalkweb), never root. This machine runs the tests as root, so `manage.py run_platform`
is started as `nobody` with setpriv, in a data folder of nobody's: its runs worker builds an
image and runs a function deployed with the SDK in its sandbox, a user namespace of its own
uid."""

import os
import re
import shutil
import subprocess
import sys
import tempfile
import uuid
from pathlib import Path

import pytest

from tests.runs.test_sandbox import needs_bwrap
from tests.test_make_run import (
    REPO,
    embedded_env,
    free_port,
    sdk_cli,
    stop_platform,
    wait_for_healthy,
    wait_for_line,
)

pytestmark = pytest.mark.slow
NOBODY = 65534

FUNCTION = """
import os
import chalkcompute


@chalkcompute.function(
    name="unprivileged",
    image=chalkcompute.Image.debian_slim().env({"CHALK_TEST_BUILD": "%s"}),
)
def unprivileged() -> str:
    print("uid", os.getuid(), "home", os.environ["HOME"])
    print("operator home", os.path.exists("/root/.profile"), "keys", os.path.exists("%s"))
    return "ok"
"""


@needs_bwrap  # a laptop without bubblewrap skips; CI installs it, and there a miss fails
def test_the_platform_runs_a_function_in_its_sandbox_as_an_unprivileged_user(tmp_path):
    if os.geteuid() != 0:
        # Only root can start a process as another user; a test run that is not root is the
        # unprivileged case already, which test_make_run's platform then exercises.
        pytest.skip("the tests already run unprivileged here: test_make_run is this test")
    # This machine's Python may live in root's home (pyenv): nobody may pass through it (not
    # list it) while the test runs, as production's chalkweb user runs a Python it can reach.
    python_home = _home_folder_of(Path(sys.executable).resolve())
    mode = python_home.stat().st_mode & 0o7777 if python_home else None
    if python_home:
        os.chmod(python_home, mode | 0o001)
    data = Path(tempfile.mkdtemp(prefix="chalk-unprivileged-"))  # not in root's 0700 tmp_path
    os.chown(data, NOBODY, NOBODY)
    port = free_port()
    output = tmp_path / "run_platform.log"
    as_nobody = [shutil.which("setpriv"), f"--reuid={NOBODY}", f"--regid={NOBODY}",
                 "--clear-groups"]  # fmt: skip
    process = subprocess.Popen(
        [*as_nobody, sys.executable, "manage.py", "run_platform", "--port", str(port)],
        cwd=REPO, env=embedded_env(data / "data", HOME=str(data)), stdout=output.open("w"),
        stderr=subprocess.STDOUT, start_new_session=True,
    )  # fmt: skip
    try:
        deploy_line = wait_for_line(
            process, output, r"export CHALK_COMPUTE_URL=\S+ CHALK_COMPUTE_TOKEN=\S+", 120
        )
        assert re.search(r"runs:\s+sandboxed with bubblewrap .*in a user namespace",
                         output.read_text()), output.read_text()  # fmt: skip
        url, token = re.findall(r"=(\S+)", deploy_line)
        wait_for_line(process, output, r"runs-\d+@\S+ ready", 120)
        wait_for_healthy(url, output)
        script = tmp_path / "unprivileged.py"
        script.write_text(FUNCTION % (uuid.uuid4().hex, data / "data" / "secrets.key"))
        cli = sdk_cli(url, token, tmp_path)

        deployed = cli("deploy", script.name)
        assert deployed.returncode == 0, deployed.stdout + deployed.stderr
        started = cli("run", "unprivileged")
        assert started.returncode == 0, started.stdout + started.stderr
        run_id = re.search(r"Started run (\d+)", started.stdout).group(1)
        followed = cli("logs", run_id, "--follow")

        said = followed.stdout + followed.stderr + output.read_text()
        assert followed.returncode == 0, said
        assert f"uid {NOBODY} home /home/run" in followed.stdout, said
        assert "operator home False keys False" in followed.stdout, said
        assert "Traceback" not in output.read_text(), said
    finally:
        alive = stop_platform(process)
        subprocess.run(["rm", "-rf", str(data)], check=False)
        if python_home:
            os.chmod(python_home, mode)
    assert alive == []


def _home_folder_of(path: Path) -> Path | None:
    """The first folder on the way to `path` that others may not pass through, if any."""
    for folder in reversed(path.parents):
        if not folder.stat().st_mode & 0o001:
            return folder
    return None
