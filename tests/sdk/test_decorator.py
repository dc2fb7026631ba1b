"""The decorator's definition-time rules: each broken rule raises InvalidFunctionError at once."""

import asyncio

import pytest

import chalkcompute
from chalkcompute import InvalidFunctionError, Retries, Secret
from chalkcompute.image import Image, InvalidImageError


def declare(fn, **options):
    return chalkcompute.function(**options)(fn)


def no_params():
    return 42


def test_it_returns_a_function_that_still_runs_locally():
    declared = declare(no_params, schedule="10m")
    assert declared() == 42
    assert declared.__name__ == "no_params"
    assert declared.name == "no-params"
    assert declared.schedule.cron == "*/10 * * * *"


def test_it_runs_an_async_function_locally():
    async def fetch_rates():
        return "rates"

    declared = declare(fetch_rates, schedule="1h")
    assert asyncio.run(declared()) == "rates"


def test_it_works_as_a_bare_decorator():
    @chalkcompute.function
    def on_demand():
        return "ok"

    assert on_demand.schedule is None
    assert on_demand() == "ok"


@pytest.mark.parametrize(
    "source, shown",
    [
        ("def f(x): pass", "(x)"),
        ("def f(x=1): pass", "(x=1)"),
        ("def f(*args): pass", "(*args)"),
        ("def f(**kwargs): pass", "(**kwargs)"),
        ("def f(*, key=None): pass", "(key=None)"),
    ],
)
def test_it_rejects_a_scheduled_function_with_parameters(source, shown):
    namespace: dict = {}
    exec(source, namespace)
    with pytest.raises(InvalidFunctionError) as excinfo:
        declare(namespace["f"], schedule="0 * * * *")
    message = str(excinfo.value)
    assert message.startswith("@chalkcompute.function on f:")
    assert "takes no parameters" in message and shown in message


def test_it_lets_an_on_demand_function_have_defaulted_parameters():
    def report(day="today"):
        return day

    assert declare(report)() == "today"


def test_it_rejects_an_on_demand_function_with_required_parameters():
    def report(day):
        return day

    with pytest.raises(InvalidFunctionError, match=r"parameters without a default \(day\)"):
        declare(report)


def test_it_rejects_a_generator():
    def rows():
        yield 1

    with pytest.raises(InvalidFunctionError, match="cannot be a generator.*return a value"):
        declare(rows, schedule="1d")


def test_it_rejects_an_async_generator():
    async def rows():
        yield 1

    with pytest.raises(InvalidFunctionError, match="cannot be a generator"):
        declare(rows, schedule="1d")


def test_it_includes_the_schedule_engines_message():
    with pytest.raises(InvalidFunctionError) as excinfo:
        declare(no_params, schedule="90m")
    message = str(excinfo.value)
    assert message.startswith("@chalkcompute.function on no_params:")
    assert "crontab" in message


@pytest.mark.parametrize("cpu", ["1", "0.5", "500m", "2", 1, 0.25, "2e0"])
def test_it_accepts_cpu_quantities(cpu):
    assert declare(no_params, cpu=cpu).cpu == str(cpu)


@pytest.mark.parametrize(
    "cpu, fragment",
    [
        ("0", "greater than zero"),
        ("-1", "not a Kubernetes quantity"),
        ("one", "not a Kubernetes quantity"),
        ("1 core", "not a Kubernetes quantity"),
        ("1x", "unknown suffix"),
        ("0.0001", "below 1m"),
        (True, "must be a string"),
        ("", "not a Kubernetes quantity"),
    ],
)
def test_it_rejects_bad_cpu(cpu, fragment):
    with pytest.raises(InvalidFunctionError, match=fragment):
        declare(no_params, cpu=cpu)


@pytest.mark.parametrize("memory", ["512Mi", "1Gi", "1G", "16Gi", "1.5Gi", "2097152", "1e9"])
def test_it_accepts_memory_quantities(memory):
    assert declare(no_params, memory=memory).memory == memory


@pytest.mark.parametrize(
    "memory, fragment",
    [
        ("512m", "did you mean 512Mi"),
        ("512", "too small to run Python"),
        ("0Gi", "greater than zero"),
        ("1GB", "unknown suffix"),
        ("lots", "not a Kubernetes quantity"),
        ("-1Gi", "not a Kubernetes quantity"),
    ],
)
def test_it_rejects_bad_memory(memory, fragment):
    with pytest.raises(InvalidFunctionError, match=fragment):
        declare(no_params, memory=memory)


@pytest.mark.parametrize("gpu", ["nvidia-l4", "nvidia-l4:2", "nvidia-h100:8", "nvidia-t4:1"])
def test_it_accepts_known_gpu_types(gpu):
    assert declare(no_params, gpu=gpu).gpu == gpu


def test_it_lists_the_known_gpu_types_for_an_unknown_one():
    with pytest.raises(InvalidFunctionError) as excinfo:
        declare(no_params, gpu="nvidia-rtx-9090")
    message = str(excinfo.value)
    assert "'nvidia-rtx-9090' is not a known type" in message
    assert "nvidia-l4" in message and "nvidia-h100" in message


@pytest.mark.parametrize("gpu", ["nvidia-l4:0", "nvidia-l4:9", "nvidia-l4:x", "nvidia-l4:", 1])
def test_it_rejects_a_bad_gpu_count(gpu):
    with pytest.raises(InvalidFunctionError, match="gpu"):
        declare(no_params, gpu=gpu)


def test_it_takes_retries_as_a_count():
    assert declare(no_params, retries=3).retries == Retries(max_retries=3)


def test_it_takes_a_retries_policy():
    policy = Retries(max_retries=2, backoff_coefficient=3.0, initial_delay=5, max_delay=30)
    declared = declare(no_params, retries=policy)
    assert declared.retries is policy
    assert [policy.delay_before(n) for n in (1, 2, 3)] == [5.0, 15.0, 30.0]


@pytest.mark.parametrize(
    "retries, fragment",
    [
        (-1, "from 0 to 100"),
        (True, "whole number"),
        ("3", "whole number"),
        (1.5, "whole number"),
    ],
)
def test_it_rejects_bad_retries(retries, fragment):
    with pytest.raises(InvalidFunctionError, match=fragment):
        declare(no_params, retries=retries)


def test_it_rejects_a_retries_policy_with_a_max_delay_below_the_initial_delay():
    with pytest.raises(ValueError, match="max_delay"):
        Retries(max_retries=1, initial_delay=10, max_delay=5)


@pytest.mark.parametrize("timeout", [0, -5, float("inf"), float("nan"), "60", True, 8 * 24 * 3600])
def test_it_rejects_a_bad_timeout(timeout):
    with pytest.raises(InvalidFunctionError, match="timeout"):
        declare(no_params, timeout=timeout)


def test_it_accepts_a_positive_timeout():
    assert declare(no_params, timeout=0.5).timeout == 0.5


@pytest.mark.parametrize(
    "name", ["Refresh", "refresh_rates", "-refresh", "refresh-", "a" * 64, "", "ré"]
)
def test_it_rejects_a_name_that_is_not_a_dns_label(name):
    with pytest.raises(InvalidFunctionError, match="function name"):
        declare(no_params, name=name)


def test_it_derives_the_name_from_the_function_with_dashes():
    def refresh_exchange_rates():
        pass

    assert declare(refresh_exchange_rates).name == "refresh-exchange-rates"


def test_it_suggests_passing_a_name_when_nothing_is_left_to_derive_one_from():
    def _():
        pass

    with pytest.raises(InvalidFunctionError, match='pass name="..."'):
        declare(_)


def test_it_rejects_a_bad_overlap_policy():
    with pytest.raises(InvalidFunctionError, match='overlap must be "skip"'):
        declare(no_params, overlap="queue")


def test_it_rejects_secrets_that_are_not_a_list_of_secrets():
    with pytest.raises(InvalidFunctionError, match="list of chalkcompute.Secret"):
        declare(no_params, secrets=Secret.from_env("API_KEY"))
    with pytest.raises(InvalidFunctionError, match="secrets holds 'API_KEY'"):
        declare(no_params, secrets=["API_KEY"])


def test_it_rejects_a_secret_listed_twice():
    secrets = [Secret.from_env("API_KEY"), Secret.from_name("API_KEY")]
    with pytest.raises(InvalidFunctionError, match="API_KEY is listed twice"):
        declare(no_params, secrets=secrets)


@pytest.mark.parametrize("name", ["1KEY", "api-key", "API KEY", ""])
def test_it_rejects_a_secret_name_that_is_not_an_environment_variable(name):
    with pytest.raises(ValueError, match="secret name"):
        Secret.from_name(name)


def test_it_rejects_an_image_that_is_not_an_image():
    with pytest.raises(InvalidFunctionError, match="image must be a chalkcompute.Image"):
        declare(no_params, image="python:3.11")


def test_it_rejects_something_that_is_not_a_function():
    with pytest.raises(InvalidFunctionError, match="plain Python function"):
        chalkcompute.function(schedule="1d")(print)


def test_an_image_is_immutable_and_each_step_returns_a_new_one():
    base = Image.debian_slim()
    with_requests = base.pip_install("requests")
    assert base.steps == ()
    assert with_requests.steps == (("pip_install", ("requests",)),)
    with pytest.raises(AttributeError, match="immutable"):
        base.python_version = "3.12"


def test_equal_image_specs_have_one_canonical_spec_and_hash():
    first = Image.debian_slim().run_commands("pip install requests").env({"B": "2", "A": "1"})
    second = (
        Image.debian_slim("3.11").run_commands("pip install requests").env({"A": "1", "B": "2"})
    )
    assert first == second and hash(first) == hash(second)
    assert first.spec_hash == second.spec_hash
    assert first.canonical_json == (
        '{"base":"debian_slim","python_version":"3.11","steps":'
        '[{"run_commands":["pip install requests"]},{"env":{"A":"1","B":"2"}}]}'
    )


def test_step_order_is_part_of_an_images_identity():
    first = Image.debian_slim().apt_install("curl").pip_install("requests")
    second = Image.debian_slim().pip_install("requests").apt_install("curl")
    assert first.spec_hash != second.spec_hash


def test_an_image_round_trips_through_its_spec():
    image = Image.debian_slim("3.12").apt_install("curl").pip_install("requests==2.32.3")
    assert Image.from_spec(image.spec) == image


@pytest.mark.parametrize(
    "build, fragment",
    [
        (lambda: Image.debian_slim("2.7"), "python_version '2.7' is not supported"),
        (lambda: Image.debian_slim().pip_install(), "at least one item"),
        (lambda: Image.debian_slim().pip_install(""), "non-empty strings"),
        (lambda: Image.debian_slim().pip_install("--index-url=x"), "not options"),
        (lambda: Image.debian_slim().apt_install("curl; rm -rf /"), "not a Debian package"),
        (lambda: Image.debian_slim().env({"1X": "y"}), "not an environment variable name"),
        (lambda: Image.debian_slim().env({"X": 1}), "must be a string"),
        (lambda: Image.from_spec({"steps": [{"docker": ["x"]}]}), "step 'docker' is unknown"),
        (lambda: Image.from_spec({"base": "alpine"}), "base 'alpine' is not supported"),
        (lambda: Image.from_spec({"python": "3.11"}), "unknown fields: python"),
    ],
)
def test_it_rejects_bad_image_specs(build, fragment):
    with pytest.raises(InvalidImageError, match=fragment):
        build()
