"""`python my_job.py` deploys: each decorated function, as it is defined, to the live server.

Every test runs real scripts in a subprocess of the venv's python against pytest-django's live
server, with a token from token_create, as a user would from a terminal.
"""

import os
import socket
import subprocess
import sys
import textwrap
from datetime import timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest

from common import crypto
from scheduling.models import Function, Secret
from tests.personas import make_token
from tests.server.support import ChalkServer, utc_minutes

REPO = Path(__file__).resolve().parents[2]
HELLO = REPO / "examples" / "hello.py"


@pytest.fixture
def chalk(live_server, settings) -> ChalkServer:
    settings.CHALK_PUBLIC_URL = live_server.url
    _, token = make_token("sdk-tests")
    return ChalkServer(live_server.url, token)


def write(folder: Path, name: str, source: str) -> Path:
    path = folder / name
    path.write_text(textwrap.dedent(source))
    return path


def closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def test_it_deploys_a_script_run_as_main(chalk):
    result = chalk.python(str(HELLO))

    assert (result.returncode, result.stderr) == (0, "")
    function = Function.objects.get(name="hello")
    fire_times = [function.next_fire_at + timedelta(minutes=5 * n) for n in range(3)]
    assert result.stdout.splitlines() == [
        "Deployed hello: version 1",
        "  schedule   every 5 minutes (*/5 * * * *, UTC)",
        f"  next runs  {utc_minutes(fire_times)}",
        f"  console    {chalk.url}/functions/hello",
    ]
    version = function.current_version
    assert (version.source, version.source_filename) == (HELLO.read_text(), "hello.py")
    assert (version.entrypoint, version.timeout, version.created_by) == ("hello", 60.0, "sdk-tests")


def test_it_says_unchanged_when_the_script_runs_again(chalk):
    chalk.python(str(HELLO))

    result = chalk.python(str(HELLO))

    assert result.returncode == 0
    assert result.stdout.splitlines()[0] == "hello: unchanged (version 1)"
    assert result.stdout.splitlines()[1] == "  schedule   every 5 minutes (*/5 * * * *, UTC)"
    assert Function.objects.get(name="hello").versions.count() == 1


def test_it_uploads_a_from_env_secret_without_printing_it(chalk, tmp_path):
    job = write(
        tmp_path,
        "rates.py",
        """
        import chalkcompute

        @chalkcompute.function(
            name="rates", secrets=[chalkcompute.Secret.from_env("EXCHANGE_API_KEY")]
        )
        def rates() -> None:
            pass
        """,
    )

    result = chalk.python(str(job), EXCHANGE_API_KEY="s3cr3t-from-the-laptop")

    assert result.returncode == 0, result.stderr
    assert "  secrets    EXCHANGE_API_KEY" in result.stdout.splitlines()
    assert "s3cr3t-from-the-laptop" not in result.stdout + result.stderr
    secret = Secret.objects.get(name="EXCHANGE_API_KEY")
    assert crypto.decrypt(secret.ciphertext) == "s3cr3t-from-the-laptop"
    assert Function.objects.get(name="rates").current_version.secret_names == ["EXCHANGE_API_KEY"]


def test_it_explains_a_from_env_secret_neither_set_here_nor_stored(chalk, tmp_path):
    job = write(
        tmp_path,
        "rates.py",
        """
        import chalkcompute

        @chalkcompute.function(
            name="rates", secrets=[chalkcompute.Secret.from_env("EXCHANGE_API_KEY")]
        )
        def rates() -> None:
            pass
        """,
    )

    result = chalk.python(str(job), EXCHANGE_API_KEY=None)

    assert (result.returncode, result.stdout) == (1, "")
    assert result.stderr == (
        "chalkcompute: cannot deploy rates: Secret.from_env('EXCHANGE_API_KEY'): "
        "$EXCHANGE_API_KEY is not set here and no secret EXCHANGE_API_KEY is stored on the "
        "server; export EXCHANGE_API_KEY=... before deploying\n"
    )
    assert not Function.objects.exists()
    assert not Secret.objects.exists()


def test_it_passes_the_servers_400_message_through(chalk, tmp_path):
    job = write(
        tmp_path,
        "rollup.py",
        """
        import chalkcompute

        @chalkcompute.function(
            name="rollup", secrets=[chalkcompute.Secret.from_name("DATABASE_URL")]
        )
        def rollup() -> None:
            pass
        """,
    )

    result = chalk.python(str(job))

    assert (result.returncode, result.stdout) == (1, "")
    assert result.stderr == (
        "chalkcompute: cannot deploy rollup: secret DATABASE_URL is not stored on this server. "
        "Upload it with Secret.from_env('DATABASE_URL') in your script (it sends your local "
        "$DATABASE_URL), or PUT /api/v1/secrets/DATABASE_URL first\n"
    )


def test_it_does_not_deploy_when_the_module_is_imported(chalk, tmp_path):
    write(
        tmp_path,
        "job.py",
        """
        import chalkcompute

        @chalkcompute.function(schedule="10m")
        def job() -> None:
            pass
        """,
    )

    result = chalk.python("-c", "import job; print(job.job.name)", cwd=tmp_path)

    assert (result.returncode, result.stdout, result.stderr) == (0, "job\n", "")
    assert not Function.objects.exists()


def test_it_does_not_deploy_inside_a_run(chalk):
    result = chalk.python(str(HELLO), CHALK_IN_RUN="1")

    assert (result.returncode, result.stdout, result.stderr) == (0, "", "")
    assert not Function.objects.exists()


def test_it_explains_an_unreachable_server(chalk):
    url = f"http://127.0.0.1:{closed_port()}"

    result = chalk.python(str(HELLO), CHALK_COMPUTE_URL=url)

    assert (result.returncode, result.stdout) == (1, "")
    assert result.stderr == (
        f"chalkcompute: cannot deploy hello: Cannot reach the Chalkweb server at {url} "
        "([Errno 111] Connection refused). Start it with `make run` in your Chalkweb "
        "checkout, or set CHALK_COMPUTE_URL to the server's address.\n"
    )


def test_it_explains_a_refused_token(chalk):
    result = chalk.python(str(HELLO), CHALK_COMPUTE_TOKEN="chalk_not-a-real-token")

    assert (result.returncode, result.stdout) == (1, "")
    assert result.stderr == (
        f"chalkcompute: cannot deploy hello: {chalk.url} refused CHALK_COMPUTE_TOKEN: This API "
        "token is not valid on this server. To get a token, create one with `python manage.py "
        "create_token NAME --user USERNAME` on the server (or on the console's API tokens page), "
        "then export "
        "CHALK_COMPUTE_TOKEN=<token>\n"
    )


def test_it_explains_a_missing_token(chalk):
    result = chalk.python(str(HELLO), CHALK_COMPUTE_TOKEN=None)

    assert (result.returncode, result.stdout) == (1, "")
    assert result.stderr == (
        f"chalkcompute: cannot deploy hello: CHALK_COMPUTE_TOKEN is not set, and {chalk.url} "
        "needs an API token. Create a token on the server with `python manage.py create_token "
        "NAME --user USERNAME` (or on the console's API tokens page), then "
        "`export CHALK_COMPUTE_TOKEN=<token>`.\n"
    )


def test_it_refuses_a_function_not_defined_at_module_level(chalk, tmp_path):
    job = write(
        tmp_path,
        "factory.py",
        """
        import chalkcompute

        def make():
            @chalkcompute.function(name="nested")
            def inner() -> None:
                pass

            return inner

        make()
        """,
    )

    result = chalk.python(str(job))

    assert (result.returncode, result.stdout) == (1, "")
    assert result.stderr == (
        "chalkcompute: cannot deploy nested: make.<locals>.inner is not defined at the top level "
        "of its module, so the platform cannot find it by name. Move `def inner` to the top "
        "level of the file (not inside a function or a class)\n"
    )
    assert not Function.objects.exists()


def test_it_refuses_to_deploy_code_that_has_no_file(chalk):
    code = "import chalkcompute\n@chalkcompute.function(name='typed')\ndef typed():\n    pass\n"

    result = chalk.python("-c", code)

    assert result.returncode == 1
    assert result.stderr.splitlines()[-1] == (
        "chalkcompute.deploy.DeployError: cannot deploy typed: it is defined in an interactive "
        "session or `python -c`, which has no source file to ship. Save it in a file and run "
        "`python FILE.py` (or `chalkcompute deploy FILE.py`)"
    )


FROM_ENV_JOB = """
import chalkcompute

@chalkcompute.function(name="rates", secrets=[chalkcompute.Secret.from_env("EXCHANGE_API_KEY")])
def rates() -> None:
    pass
"""


def test_a_from_env_secret_not_set_here_is_the_stored_one_and_the_summary_says_so(chalk, tmp_path):
    job = write(tmp_path, "rates.py", FROM_ENV_JOB)
    chalk.python(str(job), EXCHANGE_API_KEY="stored-by-a-teammate")

    result = chalk.python(str(job), EXCHANGE_API_KEY=None)

    assert result.returncode == 0, result.stderr
    assert (
        "  stored     EXCHANGE_API_KEY: not set here, so the value stored on the server"
        in result.stdout.splitlines()
    )
    secret = Secret.objects.get(name="EXCHANGE_API_KEY")
    assert crypto.decrypt(secret.ciphertext) == "stored-by-a-teammate"


def test_a_different_local_value_is_uploaded_and_the_summary_says_it_replaced_one(chalk, tmp_path):
    job = write(tmp_path, "rates.py", FROM_ENV_JOB)
    first = chalk.python(str(job), EXCHANGE_API_KEY="first")
    same = chalk.python(str(job), EXCHANGE_API_KEY="first")
    other = chalk.python(str(job), EXCHANGE_API_KEY="second")

    line = "  uploaded   EXCHANGE_API_KEY from your environment: "
    assert line + "new on the server" in first.stdout.splitlines()
    assert line + "the same as the value stored on the server" in same.stdout.splitlines()
    assert line + "REPLACED the different value stored on the server" in other.stdout.splitlines()
    secret = Secret.objects.get(name="EXCHANGE_API_KEY")
    assert crypto.decrypt(secret.ciphertext) == "second"


def test_a_script_that_imports_jobs_says_they_were_not_deployed(chalk, tmp_path):
    write(tmp_path, "jobs.py", FROM_ENV_JOB)
    main = write(tmp_path, "main.py", "import jobs\n")

    result = chalk.python(str(main), cwd=tmp_path)

    assert (result.returncode, result.stdout) == (0, "")
    assert result.stderr == (
        "chalkcompute: 1 function declared in imported modules was not deployed: rates "
        "(jobs.py). Only the script you run deploys its own functions; run `python FILE.py` "
        "or `chalkcompute deploy FILE.py` for each module, or call fn.deploy()\n"
    )
    assert not Function.objects.exists()


def test_deploy_on_a_function_of_an_imported_module_deploys_it_with_its_files(chalk, tmp_path):
    write(tmp_path, "helpers.py", "RATE = 1\n")
    write(
        tmp_path,
        "jobs.py",
        """
        import chalkcompute

        image = chalkcompute.Image.debian_slim().add_local_python_source("helpers")

        @chalkcompute.function(image=image)
        def refresh_rates() -> None:
            pass
        """,
    )
    main = write(tmp_path, "main.py", "import jobs\njobs.refresh_rates.deploy()\n")

    result = chalk.python(str(main), cwd=tmp_path)

    assert (result.returncode, result.stderr) == (0, "")
    assert "Deployed refresh-rates: version 1" in result.stdout
    assert "  files      1 (9 bytes) shipped with the code" in result.stdout.splitlines()
    version = Function.objects.get(name="refresh-rates").current_version
    assert (version.source_filename, [f.path for f in version.files.all()]) == (
        "jobs.py",
        ["helpers.py"],
    )


def test_the_modules_a_script_imports_from_its_folder_ship_with_it(chalk, tmp_path):
    write(tmp_path, "units.py", "EUR = 'EUR'\n")
    write(tmp_path, "helpers.py", "from units import EUR\n")
    write(tmp_path, "unused.py", "")
    script = write(
        tmp_path,
        "jobs.py",
        """
        import chalkcompute
        import helpers

        @chalkcompute.function()
        def refresh_rates() -> None:
            print(helpers.EUR)
        """,
    )

    # From another folder, as a user may: the script's folder is what counts.
    result = chalk.python(str(script), cwd=tmp_path.parent)

    assert (result.returncode, result.stderr) == (0, "")
    lines = result.stdout.splitlines()
    assert (
        "  imports    helpers.py, units.py: imported from the script's folder, shipped with it"
        in lines
    )
    assert "  files      2 (34 bytes) shipped with the code" in lines
    version = Function.objects.get(name="refresh-rates").current_version
    assert sorted(f.path for f in version.files.all()) == ["helpers.py", "units.py"]

    again = chalk.chalkcompute("deploy", str(script), cwd=tmp_path.parent)
    assert again.stdout.splitlines()[0] == "refresh-rates: unchanged (version 1)", again.stderr
    write(tmp_path, "units.py", "EUR = 'euro'\n")
    changed = chalk.python(str(script))
    assert changed.stdout.splitlines()[0] == "Deployed refresh-rates: version 2", changed.stderr


def test_a_refused_file_names_the_imports_that_shipped_it(chalk, tmp_path, settings):
    settings.CHALK_MAX_FILES_BYTES = 100
    write(tmp_path, "tables.py", f"RATES = {'x' * 200!r}\n")
    script = write(
        tmp_path,
        "jobs.py",
        """
        import chalkcompute
        import tables

        @chalkcompute.function()
        def refresh_rates() -> None:
            pass
        """,
    )

    result = chalk.python(str(script))

    assert result.returncode == 1
    assert "the shipped files are 211 bytes; the limit is 100 bytes" in result.stderr
    assert result.stderr.rstrip().endswith(
        "(shipped because the script imports them from its folder: tables.py)"
    )
    assert not Function.objects.exists()


def test_a_reader_that_stops_early_stops_no_deploy(chalk, tmp_path):
    """`python jobs.py | head -1`: the reader has gone before the first summary is printed
    (its end of the pipe is closed first); both functions still deploy, with no traceback."""
    script = write(
        tmp_path,
        "jobs.py",
        """
        import chalkcompute

        @chalkcompute.function()
        def refresh_rates() -> None:
            pass

        @chalkcompute.function()
        def nightly_rollup() -> None:
            pass
        """,
    )
    read_end, write_end = os.pipe()
    os.close(read_end)
    writer = subprocess.run(
        [sys.executable, str(script)], env=chalk.env(), stdout=write_end, stderr=subprocess.PIPE,
        timeout=60,
    )  # fmt: skip
    os.close(write_end)

    assert (writer.returncode, writer.stderr) == (0, b"")
    assert sorted(Function.objects.values_list("name", flat=True)) == [
        "nightly-rollup", "refresh-rates",
    ]  # fmt: skip


def test_a_schedule_in_a_zone_is_deployed_and_listed_in_that_zone_and_in_utc(chalk, tmp_path):
    script = write(
        tmp_path,
        "standup.py",
        """
        import chalkcompute

        @chalkcompute.function(schedule="0 9 * * 1-5", timezone="Europe/Berlin")
        def standup_report():
            pass
        """,
    )

    result = chalk.python(str(script))

    assert (result.returncode, result.stderr) == (0, "")
    first = Function.objects.get(name="standup-report").next_fire_at
    local = first.astimezone(ZoneInfo("Europe/Berlin"))
    assert local.strftime("%H:%M") == "09:00" and local.weekday() < 5
    lines = result.stdout.splitlines()
    assert lines[1].endswith("(0 9 * * 1-5, Europe/Berlin)")
    assert lines[2].startswith(
        f"  next runs  {local:%Y-%m-%d} 09:00 {local:%Z} ({first:%H:%M} UTC), "
    )
    listed = chalk.chalkcompute("ls")
    row = next(line for line in listed.stdout.splitlines() if line.startswith("standup-report"))
    assert "(0 9 * * 1-5, Europe/Berlin)" in row
    assert f"{local:%Y-%m-%d} 09:00 {local:%Z} ({first:%H:%M} UTC)" in row


def test_a_misspelt_zone_fails_at_definition_with_a_suggestion(chalk, tmp_path):
    script = write(
        tmp_path,
        "standup.py",
        """
        import chalkcompute

        @chalkcompute.function(schedule="0 9 * * 1-5", timezone="Europe/Berln")
        def standup_report():
            pass
        """,
    )

    result = chalk.python(str(script))

    assert result.returncode != 0
    assert 'did you mean "Europe/Berlin"' in result.stderr
    assert not Function.objects.filter(name="standup-report").exists()


def test_the_summary_warns_when_a_run_may_outlast_the_time_between_slots(chalk, tmp_path):
    script = write(
        tmp_path,
        "sync.py",
        """
        import chalkcompute

        @chalkcompute.function(schedule="*/10 * * * *", timeout=3600)
        def sync_orders():
            pass
        """,
    )

    result = chalk.python(str(script))

    assert result.returncode == 0, result.stderr
    assert (
        "  warning    timeout=3600 s is longer than the shortest time between two slots "
        '(10 min): the slot after a run that long is skipped (overlap="skip")'
    ) in result.stdout.splitlines()
