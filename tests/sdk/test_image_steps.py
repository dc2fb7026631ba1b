"""An Image's typed steps: what executors walk instead of the spec's JSON."""

from chalkcompute.image import DEFAULT_PYTHON_VERSION, STEP_KINDS, Image, ImageStep

IMAGE = (
    Image.debian_slim("3.12")
    .apt_install("curl")
    .env({"B": "2", "A": "1"})
    .pip_install("requests==2.32.3", "rich")
    .run_commands("echo one", "echo two")
    .env({"A": "again"})
)


def test_each_step_is_its_kind_and_content_in_the_order_written():
    assert IMAGE.steps == (
        ImageStep("apt_install", ("curl",)),
        ImageStep("env", (("A", "1"), ("B", "2"))),
        ImageStep("pip_install", ("requests==2.32.3", "rich")),
        ImageStep("run_commands", ("echo one", "echo two")),
        ImageStep("env", (("A", "again"),)),
    )
    assert {step.kind for step in IMAGE.steps} == set(STEP_KINDS)


def test_the_steps_rebuilt_from_the_spec_are_the_same():
    assert Image.from_spec(IMAGE.spec).steps == IMAGE.steps
    assert all(isinstance(step, ImageStep) for step in Image.from_spec(IMAGE.spec).steps)


def test_an_executor_matches_on_the_kind():
    def words(step: ImageStep) -> str:
        match step:
            case ImageStep("apt_install", packages):
                return "apt " + " ".join(packages)
            case ImageStep("pip_install", packages):
                return "pip " + " ".join(packages)
            case ImageStep("run_commands", commands):
                return " && ".join(commands)
            case ImageStep("env", pairs):
                return " ".join(f"{name}={value}" for name, value in pairs)
        raise AssertionError(step)

    assert [words(step) for step in IMAGE.steps] == [
        "apt curl",
        "A=1 B=2",
        "pip requests==2.32.3 rich",
        "echo one && echo two",
        "A=again",
    ]


def test_the_environment_merges_the_env_steps_a_later_one_winning():
    assert IMAGE.environment == {"A": "again", "B": "2"}
    assert Image.debian_slim().pip_install("x").environment == {}


def test_the_python_version_defaults_in_one_place():
    assert Image.debian_slim().python_version == DEFAULT_PYTHON_VERSION
    assert Image.from_spec({}).python_version == DEFAULT_PYTHON_VERSION
    assert IMAGE.python_version == "3.12"


def test_an_image_built_from_plain_tuples_has_typed_steps():
    image = Image("3.11", (("pip_install", ("requests",)),))

    assert image.steps == (ImageStep("pip_install", ("requests",)),)
    assert image.steps[0].kind == "pip_install"
