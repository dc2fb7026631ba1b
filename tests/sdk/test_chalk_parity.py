"""Code written for Chalk's own SDK (PyPI chalkcompute 2.13.11) declares unchanged: each call
shape of Chalk's scheduled-function API, with what it becomes on Chalkweb, and the clear error
or warning where Chalkweb does something else."""

import os
import textwrap
from pathlib import Path

import pytest

import chalkcompute
from chalkcompute import (
    FunctionError,
    Image,
    InvalidFunctionError,
    InvalidImageError,
    InvalidScheduleError,
    Retries,
    RetryPolicy,
    Secret,
)
from chalkcompute.retries import InvalidRetriesError
from chalkcompute.secret import MissingSecretError


def job():
    pass


def declare(fn=job, **options):
    return chalkcompute.function(**options)(fn)


# --- images ----------------------------------------------------------------------------------


def test_pip_and_apt_take_chalks_list_as_well_as_arguments():
    listed = Image.debian_slim().pip_install(["requests", "pandas"]).apt_install(["curl"])
    spread = Image.debian_slim().pip_install("requests", "pandas").apt_install("curl")

    assert listed == spread
    assert listed.spec["steps"] == [
        {"pip_install": ["requests", "pandas"]},
        {"apt_install": ["curl"]},
    ]


def test_a_list_keeps_the_rules_of_each_item():
    with pytest.raises(InvalidImageError, match="takes package names, not options like '-U'"):
        Image.debian_slim().pip_install(["-U", "requests"])
    with pytest.raises(InvalidImageError, match="needs at least one item"):
        Image.debian_slim().apt_install([])


@pytest.mark.parametrize(
    "ref", ["python:3.12-slim", "python:3.12-slim-trixie", "python:3.12.4-slim-bookworm"]
)
def test_base_of_an_official_python_slim_image_is_debian_slim(ref):
    assert Image.base(ref) == Image.debian_slim("3.12")


def test_base_of_another_image_is_refused_saying_what_to_write():
    with pytest.raises(InvalidImageError) as excinfo:
        Image.base("ghcr.io/my-org/my-image:latest")

    assert str(excinfo.value) == (
        "Image.base('ghcr.io/my-org/my-image:latest'): Chalkweb builds images from the official "
        'Python slim images only, e.g. Image.base("python:3.12-slim") or '
        'Image.debian_slim("3.12"); add what your image holds with apt_install, pip_install '
        "and run_commands"
    )


def test_python_3_14_chalks_default_is_a_version_an_image_may_have():
    assert Image.debian_slim("3.14").python_version == "3.14"


def test_requirements_files_are_read_into_a_pip_install(tmp_path):
    requirements = tmp_path / "requirements.txt"
    requirements.write_text("# pinned\nrequests==2.32.3\n\nsix  # small\n")

    expected = Image.debian_slim().pip_install("requests==2.32.3", "six")
    assert Image.debian_slim().pip_install_from_requirements(str(requirements)) == expected
    assert Image.debian_slim().uv_pip_install_from_requirements(requirements) == expected
    assert Image.debian_slim().uv_pip_install(["requests==2.32.3", "six"]) == expected


def test_a_requirements_file_with_options_or_nothing_is_refused(tmp_path):
    options = tmp_path / "options.txt"
    options.write_text("--index-url https://example.com/simple\nrequests\n")
    empty = tmp_path / "empty.txt"
    empty.write_text("# nothing\n")

    with pytest.raises(InvalidImageError, match="takes package names, not options"):
        Image.debian_slim().pip_install_from_requirements(str(options))
    with pytest.raises(InvalidImageError, match="the file lists no requirement"):
        Image.debian_slim().pip_install_from_requirements(str(empty))
    with pytest.raises(InvalidImageError, match="cannot read it"):
        Image.debian_slim().pip_install_from_requirements(str(tmp_path / "missing.txt"))


def test_local_sources_ship_files_without_changing_the_image(tmp_path, monkeypatch):
    (tmp_path / "helpers").mkdir()
    (tmp_path / "helpers" / "__init__.py").write_text("")
    (tmp_path / "helpers" / "rates.py").write_text("RATE = 1\n")
    (tmp_path / "helpers" / "__pycache__").mkdir()
    (tmp_path / "helpers" / "__pycache__" / "rates.cpython-311.pyc").write_bytes(b"\0")
    (tmp_path / "single.py").write_text("X = 2\n")
    (tmp_path / "config.yaml").write_text("a: 1\n")
    (tmp_path / "data").mkdir()
    (tmp_path / "data" / "keep.txt").write_text("keep")
    (tmp_path / "data" / "big.csv").write_text("1,2")
    monkeypatch.syspath_prepend(str(tmp_path))

    image = (
        Image.debian_slim()
        .add_local_python_source("helpers", "single")
        .add_local_file(str(tmp_path / "config.yaml"), "/app/config.yaml")
        .add_local_dir(str(tmp_path / "data"), "data", exclude=["*.csv"])
    )

    assert image == Image.debian_slim()  # the same build: files are code, not the image
    assert image.local_files() == {
        "helpers/__init__.py": b"",
        "helpers/rates.py": b"RATE = 1\n",
        "single.py": b"X = 2\n",
        "config.yaml": b"a: 1\n",
        "data/keep.txt": b"keep",
    }


def test_local_sources_that_cannot_ship_are_refused(tmp_path):
    (tmp_path / "a.txt").write_text("x")

    with pytest.raises(InvalidImageError, match="no module 'not_a_module_here' can be imported"):
        Image.debian_slim().add_local_python_source("not_a_module_here")
    with pytest.raises(InvalidImageError, match="is not a module of .py files"):
        Image.debian_slim().add_local_python_source("sys")
    with pytest.raises(InvalidImageError, match="files go in the run's working directory"):
        Image.debian_slim().add_local_file(str(tmp_path / "a.txt"), "/etc/a.txt")
    with pytest.raises(InvalidImageError, match="must not hold '..'"):
        Image.debian_slim().add_local_file(str(tmp_path / "a.txt"), "../a.txt")
    with pytest.raises(InvalidImageError, match="is not a file here"):
        Image.debian_slim().add_local_file(str(tmp_path / "missing.txt"), "a.txt")
    with pytest.raises(InvalidImageError, match="is not a folder here"):
        Image.debian_slim().add_local_dir(str(tmp_path / "a.txt"), "data")


# --- retries ---------------------------------------------------------------------------------


def test_retry_policies_map_onto_retries():
    exponential = declare(retries=RetryPolicy.exponential(attempts=5, initial=0.5, max_wait=30.0))
    linear = declare(retries=RetryPolicy.linear(attempts=3, delay=2.0))

    assert exponential.retries == Retries(
        5, backoff_coefficient=2.0, initial_delay=0.5, max_delay=30.0
    )
    assert linear.retries == Retries(3, backoff_coefficient=1.0, initial_delay=2.0, max_delay=2.0)
    assert declare(retries=None).retries == Retries(0)
    assert RetryPolicy.from_int_or_policy(3) == RetryPolicy.exponential(attempts=3)
    assert RetryPolicy.linear(attempts=2).to_dict() == {
        "max_retries": 2,
        "initial_wait_seconds": 1.0,
        "backoff_multiplier": 1.0,
        "max_wait_seconds": 1.0,
        "jitter": False,
    }


def test_a_retry_policy_keeps_chalkwebs_bounds():
    with pytest.raises(InvalidRetriesError, match="max_retries must be from 0 to 100, not -1"):
        RetryPolicy.exponential(attempts=-1)
    with pytest.raises(FunctionError, match="backoff_coefficient must be from 1.0 to 10.0"):
        RetryPolicy.exponential(multiplier=0.5)


def test_retry_on_and_key_are_accepted_with_a_warning(capsys):
    declare(retries=RetryPolicy.exponential(attempts=2, retry_on=(TimeoutError,), key="shared"))

    assert capsys.readouterr().err == (
        "chalkcompute: warning: job: RetryPolicy retry_on, RetryPolicy key have no effect on "
        'Chalkweb; see "Coming from Chalk" in its README\n'
    )


# --- the decorator's arguments -----------------------------------------------------------------


def test_chalk_only_arguments_are_accepted_with_one_warning_line(capsys):
    declared = declare(min_replicas=2, compute_class="gpu-large", chalk_identity=True)

    assert declared.spec == chalkcompute.FunctionSpec()
    assert capsys.readouterr().err == (
        "chalkcompute: warning: job: min_replicas=2, compute_class='gpu-large', "
        'chalk_identity=True have no effect on Chalkweb; see "Coming from Chalk" in its README\n'
    )


def test_chalk_only_arguments_at_chalks_defaults_say_nothing(capsys):
    declare(min_replicas=1, max_replicas=1, authenticated=False, serialization_format="pyarrow")

    assert capsys.readouterr().err == ""


def test_an_argument_neither_sdk_has_is_still_a_type_error():
    with pytest.raises(TypeError, match="unexpected keyword argument 'shedule'"):
        declare(shedule="10m")


def test_volumes_are_refused_saying_they_are_not_supported_yet():
    with pytest.raises(InvalidFunctionError, match="volumes are not supported on Chalkweb yet"):
        declare(volumes=[("cache", "/cache")])


def test_concurrency_1_is_never_two_runs_at_once():
    assert declare(concurrency=1).overlap == "skip"
    with pytest.raises(InvalidFunctionError, match='cannot go with overlap="allow"'):
        declare(concurrency=1, overlap="allow")


def test_other_concurrency_is_accepted_with_a_warning(capsys):
    declare(concurrency=4)

    assert "concurrency=4 has no effect on Chalkweb" in capsys.readouterr().err


def test_call_timeout_bounds_remote_and_must_be_seconds():
    assert declare(call_timeout=30).call_timeout == 30.0
    for wrong in (0, -1, "30", True, float("inf")):
        with pytest.raises(InvalidFunctionError, match="call_timeout must be a number of seconds"):
            declare(call_timeout=wrong)


def test_secrets_none_is_no_secrets():
    assert declare(secrets=None).secrets == ()


def test_env_takes_plain_values_and_secrets_under_their_key():
    declared = declare(
        env={"MODE": "prod", "TOKEN": Secret.from_chalk_env("API_TOKEN")},
        secrets=[Secret.from_chalk_env("DB_PASSWORD", alias="PGPASSWORD"), Secret.from_name("X")],
    )

    assert declared.env == {
        "MODE": "prod",
        "PGPASSWORD": {"secret": "DB_PASSWORD"},
        "TOKEN": {"secret": "API_TOKEN"},
    }
    assert declared.spec.secrets == ("X",)
    assert declared.spec.secrets_read == ("API_TOKEN", "DB_PASSWORD", "X")


@pytest.mark.parametrize(
    ("env", "expected"),
    [
        ({"MODE": None}, "variable MODE must be a string of at most 4096 characters"),
        ({"1MODE": "x"}, "variable name '1MODE' is not an environment variable name"),
        ("MODE=prod", "env must be an object of variable names"),
    ],
)
def test_env_refuses_what_a_run_cannot_get(env, expected):
    with pytest.raises(InvalidFunctionError, match=expected):
        declare(env=env)


def test_a_variable_from_two_places_is_refused():
    with pytest.raises(InvalidFunctionError, match=r"would get \$KEY from two secrets"):
        declare(secrets=[Secret.from_name("KEY")], env={"KEY": Secret.from_name("OTHER")})
    with pytest.raises(InvalidFunctionError, match="KEY is set in env and in secrets"):
        declare(secrets=[Secret.from_name("KEY")], env={"KEY": "plain"})


def test_tags_are_kept_and_checked():
    assert declare(tags={"team": "data", "owner": "ana"}).tags == {"owner": "ana", "team": "data"}
    with pytest.raises(InvalidFunctionError, match="tag name 'has space' must be 1 to 63"):
        declare(tags={"has space": "x"})
    with pytest.raises(InvalidFunctionError, match="tag team must be a string"):
        declare(tags={"team": 3})


# --- names, GPUs, errors ----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("python_name", "name"),
    [
        ("RefreshRates", "refreshrates"),
        ("_private_job", "private-job"),
        ("job_", "job"),
        ("refresh__exchange__rates", "refresh-exchange-rates"),
        ("x" * 70, "x" * 63),
    ],
)
def test_default_names_are_made_as_chalk_makes_them(python_name, name):
    fn = job
    code = job.__code__.replace(co_name=python_name)
    fn = type(job)(code, globals(), python_name)

    assert declare(fn).name == name


def test_gpu_count_first_is_the_same_gpu():
    assert declare(gpu="2:nvidia-a100").gpu == "nvidia-a100:2"
    assert declare(gpu="nvidia-a100:2").spec == declare(gpu="2:nvidia-a100").spec
    with pytest.raises(InvalidFunctionError, match="has an invalid count '9'"):
        declare(gpu="9:nvidia-a100")
    with pytest.raises(InvalidFunctionError, match="is not a known type"):
        declare(gpu="2:nvidia-a100:2")


def test_function_error_catches_every_definition_error_which_stay_value_errors():
    def generator():
        yield 1

    for attempt in (
        lambda: declare(generator),
        lambda: declare(schedule="90m"),
        lambda: Image.debian_slim("2.7"),
        lambda: RetryPolicy.exponential(attempts=1000),
        lambda: Secret.from_name("not-a-name"),
    ):
        with pytest.raises(FunctionError) as excinfo:
            attempt()
        assert isinstance(excinfo.value, ValueError)
    assert issubclass(InvalidScheduleError, FunctionError)


# --- secrets ---------------------------------------------------------------------------------


def test_secrets_are_declared_with_each_of_chalks_constructors(tmp_path):
    env_file = tmp_path / ".env"
    env_file.write_text('# local\nexport DB_URL="postgres://x"\nAPI_KEY=abc\n')

    declared = declare(
        secrets=[
            Secret.from_env("EXCHANGE_API_KEY"),
            Secret.from_chalk_env("STORED_KEY"),
            Secret.from_local_env("LAPTOP_KEY", env_var_name="KEY_IN_RUN"),
            Secret.from_local_env_file(str(env_file)),
        ]
    )

    assert [(s.name, s.source, s.env_var, s.local_name) for s in declared.secrets] == [
        ("EXCHANGE_API_KEY", "local_or_stored", "EXCHANGE_API_KEY", "EXCHANGE_API_KEY"),
        ("STORED_KEY", "stored", "STORED_KEY", "STORED_KEY"),
        ("KEY_IN_RUN", "local", "KEY_IN_RUN", "LAPTOP_KEY"),
        ("DB_URL", "local", "DB_URL", "DB_URL"),
        ("API_KEY", "local", "API_KEY", "API_KEY"),
    ]
    assert [s.local_value() for s in declared.secrets[3:]] == ["postgres://x", "abc"]
    assert repr(declared.secrets[2]) == "Secret.from_local_env('LAPTOP_KEY')"


def test_local_values_come_from_the_deployers_environment(monkeypatch):
    monkeypatch.setenv("EXCHANGE_API_KEY", "laptop-value")
    monkeypatch.delenv("STORED_ONLY", raising=False)
    monkeypatch.delenv("LAPTOP_KEY", raising=False)

    assert Secret.from_env("EXCHANGE_API_KEY").local_value() == "laptop-value"
    assert Secret.from_env("STORED_ONLY").local_value() is None  # the stored one is used
    with pytest.raises(MissingSecretError, match=r"\$LAPTOP_KEY is not set here"):
        Secret.from_local_env("LAPTOP_KEY").local_value()


def test_bad_env_files_and_integrations_say_what_to_do(tmp_path):
    broken = tmp_path / "broken.env"
    broken.write_text("JUST_A_NAME\n")

    with pytest.raises(InvalidFunctionError, match="line 1 is not KEY=VALUE"):
        declare(secrets=[Secret.from_local_env_file(str(broken))])
    with pytest.raises(InvalidFunctionError, match="No such file"):
        declare(secrets=[Secret.from_local_env_file(str(tmp_path / "missing.env"))])
    with pytest.raises(MissingSecretError, match="Chalkweb has no integrations"):
        Secret.from_chalk_integration("prod_postgres")


def test_inside_a_run_local_files_are_not_read(tmp_path, monkeypatch):
    monkeypatch.setenv("CHALK_IN_RUN", "1")
    script = textwrap.dedent(
        """
        import chalkcompute
        image = (
            chalkcompute.Image.debian_slim()
            .pip_install_from_requirements("requirements.txt")
            .add_local_file("config.yaml", "/app/config.yaml")
        )
        env_file = chalkcompute.Secret.from_local_env_file(".env")
        @chalkcompute.function(image=image, secrets=[env_file])
        def job():
            pass
        """
    )
    monkeypatch.chdir(tmp_path)  # none of these files is here, as in a run

    namespace: dict = {"__name__": "job_module"}
    exec(compile(script, str(Path(tmp_path) / "job.py"), "exec"), namespace)

    assert namespace["job"].secrets == ()
    assert os.environ["CHALK_IN_RUN"] == "1"
