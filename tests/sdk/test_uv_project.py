"""The seed's own command, as a new user runs it: in a fresh directory `uv init`, add the SDK
from the live server's index with the README's lines, save the seed's refresh_exchange_rates.py
(examples/: its network call swapped for a local document), export the URL and token, and
`uv run python refresh_exchange_rates.py` deploys it; a second run says unchanged.

uv is the dev dependency from PyPI, on this machine's python3.11 (never a downloaded Python),
with its own cache. The README's lines must make the server the only source of `chalkweb-sdk`:
with a default index that offers a newer, impostor `chalkweb-sdk`, uv still takes the server's,
and asked for the impostor's version it fails rather than fall back."""

import http.server
import io
import shutil
import subprocess
import sys
import threading
import tomllib
import zipfile
from pathlib import Path

import pytest

from chalkcompute.version import VERSION
from scheduling.models import Function
from sdk.distribution import build_wheel, sdk_files
from tests.personas import make_token
from tests.readme_deploy import deploy_blocks

REPO = Path(__file__).resolve().parents[2]
UV = str(Path(sys.executable).with_name("uv"))
TOKEN_PLACEHOLDER = "chalk_…"
IMPOSTOR_VERSION = "99.0.0"

pytestmark = [pytest.mark.slow, pytest.mark.django_db(transaction=True)]


def uv_env(tmp_path: Path, **extra: str) -> dict[str, str]:
    return {
        "PATH": f"{Path(UV).parent}:/usr/local/bin:/usr/bin:/bin",
        "HOME": str(tmp_path / "home"),
        "UV_CACHE_DIR": str(tmp_path / "uv-cache"),
        "UV_PYTHON": "python3.11",
        "UV_PYTHON_DOWNLOADS": "never",
        "UV_NO_CONFIG": "1",
        **extra,
    }


def sh(script: str, cwd: Path, env: dict[str, str]) -> subprocess.CompletedProcess:
    """Runs README lines as a person pastes them into bash: stops at the first failure."""
    return subprocess.run(
        ["bash", "-euc", script], cwd=cwd, env=env, capture_output=True, text=True, timeout=300
    )


def locked_sdk(project: Path) -> dict:
    lock = tomllib.loads((project / "uv.lock").read_text())
    return next(package for package in lock["package"] if package["name"] == "chalkweb-sdk")


def test_the_seeds_command_deploys_from_a_fresh_uv_project(live_server, settings, tmp_path):
    settings.CHALK_PUBLIC_URL = live_server.url
    _, token = make_token("laptop", role="deployer")
    blocks = deploy_blocks(live_server.url)
    project = tmp_path / "exchange-rates"
    project.mkdir()
    env = uv_env(tmp_path, EXCHANGE_API_KEY="demo-key")

    init = sh("uv init", project, env)
    assert init.returncode == 0, init.stderr
    with (project / "pyproject.toml").open("a") as pyproject:
        pyproject.write("\n" + blocks["uv-index"] + "\n")
    shutil.copy(REPO / "examples" / "refresh_exchange_rates.py", project)
    commands = blocks["uv-commands"].replace(TOKEN_PLACEHOLDER, token)

    first = sh(commands, project, env)
    assert first.returncode == 0, first.stdout + first.stderr
    assert first.stdout.splitlines()[0] == "Deployed refresh-exchange-rates: version 1"
    assert "  secrets    EXCHANGE_API_KEY" in first.stdout  # the local value, uploaded
    assert f"console    {live_server.url}/functions/refresh-exchange-rates" in first.stdout
    second = sh(commands, project, env)
    assert second.returncode == 0, second.stdout + second.stderr
    assert second.stdout.splitlines()[0] == "refresh-exchange-rates: unchanged (version 1)"

    function = Function.objects.get(name="refresh-exchange-rates")
    assert function.versions.count() == 1
    assert function.current_version.cron == "0 * * * *"
    sdk = locked_sdk(project)
    assert sdk["version"] == VERSION
    assert sdk["source"] == {"registry": f"{live_server.url}/simple/"}
    installed = project / ".venv" / "lib" / "python3.11" / "site-packages"
    assert (installed / "chalkcompute" / "cli.py").read_bytes() == sdk_files()[
        "chalkcompute/cli.py"
    ]
    assert not (installed / "django").exists()  # the laptop gets the SDK, not the server


def test_pip_installs_the_sdk_from_the_servers_index_alone(live_server, tmp_path):
    install = deploy_blocks(live_server.url)["pip-commands"].splitlines()[0]
    venv = tmp_path / "venv"
    subprocess.run(["python3.11", "-m", "venv", str(venv)], check=True, timeout=120)
    env = {
        "PATH": f"{venv}/bin:/usr/bin:/bin",
        "HOME": str(tmp_path),
        "PIP_CONFIG_FILE": "/dev/null",  # this machine's pip.conf adds indexes of its own
    }

    installed = sh(install, tmp_path, env)

    assert installed.returncode == 0, installed.stdout + installed.stderr
    shown = sh("python -m pip show chalkweb-sdk", tmp_path, env).stdout
    assert f"Version: {VERSION}\n" in shown
    assert sh("chalkcompute --help", tmp_path, env).returncode == 0


# --- dependency confusion --------------------------------------------------------------------


def _impostor_wheel(directory: Path) -> None:
    """A default index ("PyPI") offering a newer chalkweb-sdk whose `chalk` refuses to import."""
    files = {**sdk_files(), "chalk/__init__.py": b"raise ImportError('impostor chalkweb-sdk')\n"}
    wheel = build_wheel(files, version=IMPOSTOR_VERSION)
    project = directory / "simple" / "chalkweb-sdk"
    project.mkdir(parents=True)
    (project / wheel.filename).write_bytes(wheel.content)
    (project / "index.html").write_text(
        f'<a href="{wheel.filename}#sha256={wheel.sha256}">{wheel.filename}</a>\n'
    )
    with zipfile.ZipFile(io.BytesIO(wheel.content)) as archive:
        assert archive.read("chalk/__init__.py").startswith(b"raise ImportError")


@pytest.fixture
def impostor_index(tmp_path):
    root = tmp_path / "impostor"
    _impostor_wheel(root)

    class Handler(http.server.SimpleHTTPRequestHandler):
        def __init__(self, *args, **kwargs):
            super().__init__(*args, directory=str(root), **kwargs)

        def log_message(self, *args):
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{server.server_address[1]}/simple/"
    server.shutdown()


def _bare_project(tmp_path: Path, env: dict[str, str], index_lines: str) -> Path:
    project = tmp_path / "jobs"
    project.mkdir()
    assert sh("uv init --bare", project, env).returncode == 0
    with (project / "pyproject.toml").open("a") as pyproject:
        pyproject.write("\n" + index_lines + "\n")
    return project


def test_the_readmes_lines_take_the_sdk_from_the_server_over_a_newer_one_elsewhere(
    live_server, impostor_index, tmp_path
):
    env = uv_env(tmp_path, UV_DEFAULT_INDEX=impostor_index)
    project = _bare_project(tmp_path, env, deploy_blocks(live_server.url)["uv-index"])

    added = sh("uv add chalkweb-sdk", project, env)

    assert added.returncode == 0, added.stderr
    assert locked_sdk(project)["version"] == VERSION
    assert locked_sdk(project)["source"] == {"registry": f"{live_server.url}/simple/"}
    imported = sh("uv run python -c 'import chalk, chalkcompute'", project, env)
    assert imported.returncode == 0, imported.stderr


def test_the_readmes_lines_never_fall_back_to_another_index(live_server, impostor_index, tmp_path):
    env = uv_env(tmp_path, UV_DEFAULT_INDEX=impostor_index)
    project = _bare_project(tmp_path, env, deploy_blocks(live_server.url)["uv-index"])

    added = sh(f"uv add chalkweb-sdk=={IMPOSTOR_VERSION}", project, env)

    assert added.returncode != 0
    assert f"chalkweb-sdk=={IMPOSTOR_VERSION}" in added.stderr
    assert not (project / "uv.lock").exists()


def test_without_the_pin_the_newer_impostor_wins(live_server, impostor_index, tmp_path):
    """The control: the same project with the server added as an ordinary index, not pinned,
    takes the impostor; this is what the README's lines prevent."""
    env = uv_env(tmp_path, UV_DEFAULT_INDEX=impostor_index, UV_INDEX_STRATEGY="unsafe-best-match")
    project = _bare_project(tmp_path, env, f'[[tool.uv.index]]\nurl = "{live_server.url}/simple/"')

    added = sh("uv add chalkweb-sdk", project, env)

    assert added.returncode == 0, added.stderr
    assert locked_sdk(project)["version"] == IMPOSTOR_VERSION
