"""chalkcompute.FunctionSpec: one value for how a function runs, its JSON, and its rules."""

import dataclasses
import json
import re

import pytest
from hypothesis import assume, given, settings
from hypothesis import strategies as st

import chalkcompute
from chalkcompute import FunctionSpec, Image, InvalidSpecError, Retries, Secret
from chalkcompute.deploy import deploy_payload
from chalkcompute.spec import Problem

A_SPEC = {
    "schedule": "10m",
    "timezone": None,
    "image": {"base": "debian_slim", "python_version": "3.12", "steps": [{"pip_install": ["x"]}]},
    "secrets": ["EXCHANGE_API_KEY", "DATABASE_URL"],
    "cpu": "500m",
    "memory": "1Gi",
    "gpu": "nvidia-l4:2",
    "retries": {
        "max_retries": 3,
        "backoff_coefficient": 2.0,
        "initial_delay": 1.0,
        "max_delay": 60.0,
    },
    "timeout": 600.0,
    "overlap": "allow",
    "env": {"MODE": "prod", "TOKEN": {"secret": "API_TOKEN"}},
    "tags": {"team": "data"},
    "alerts": {
        "on_failure": ["ops-slack"],
        "after_failures": None,
        "on_recovery": None,
        "late_after": 300.0,
        "running_after": None,
        "on_skip": True,
        "remind_every": None,
    },
}


def problems(data: dict) -> list[tuple[str, str]]:
    with pytest.raises(InvalidSpecError) as excinfo:
        FunctionSpec.from_dict(data)
    return [(problem.path, problem.message) for problem in excinfo.value.problems]


def test_its_fields_are_the_decorators_options_but_the_name():
    assert FunctionSpec.field_names() == (
        "schedule", "timezone", "image", "secrets", "cpu", "memory", "gpu", "retries", "timeout",
        "overlap", "env", "tags", "alerts",
    )  # fmt: skip


def test_it_has_the_decorators_defaults():
    spec = FunctionSpec()
    assert spec.as_dict() == {
        "schedule": None,
        "timezone": None,
        "image": {"base": "debian_slim", "python_version": "3.11", "steps": []},
        "secrets": [],
        "cpu": None,
        "memory": None,
        "gpu": None,
        "retries": {
            "max_retries": 0,
            "backoff_coefficient": 2.0,
            "initial_delay": 1.0,
            "max_delay": 60.0,
        },
        "timeout": None,
        "overlap": "skip",
        "env": {},
        "tags": {},
        "alerts": {
            "on_failure": [],
            "after_failures": None,
            "on_recovery": None,
            "late_after": None,
            "running_after": None,
            "on_skip": None,
            "remind_every": None,
        },
    }
    assert FunctionSpec.from_dict({}) == spec


def test_it_round_trips_through_its_json():
    spec = FunctionSpec.from_dict(A_SPEC)

    assert FunctionSpec.from_dict(spec.as_dict()) == spec
    assert FunctionSpec.from_dict(json.loads(json.dumps(spec.as_dict()))).as_dict() == (
        spec.as_dict()
    )
    assert spec.as_dict() == {**A_SPEC, "secrets": ["DATABASE_URL", "EXCHANGE_API_KEY"]}


def test_it_keeps_typed_values():
    spec = FunctionSpec.from_dict(A_SPEC)

    assert spec.schedule.cron == "*/10 * * * *"
    assert spec.image == Image.debian_slim("3.12").pip_install("x")
    assert spec.retries == Retries(max_retries=3)
    assert spec.secrets == ("DATABASE_URL", "EXCHANGE_API_KEY")
    assert (spec.timeout, type(spec.timeout)) == (600.0, float)


def test_it_takes_python_values_and_their_json_alike():
    typed = FunctionSpec(
        schedule="10m",
        image=Image.debian_slim("3.12").pip_install("x"),
        secrets=("EXCHANGE_API_KEY", "DATABASE_URL"),
        cpu="500m",
        memory="1Gi",
        gpu=" nvidia-l4:2 ",
        retries=Retries(max_retries=3),
        timeout=600,
        overlap="allow",
        env={"TOKEN": {"secret": "API_TOKEN"}, "MODE": "prod"},
        tags={"team": "data"},
        alerts=chalkcompute.Alerts(on_failure="ops-slack", late_after="5m", on_skip=True),
    )
    assert typed == FunctionSpec.from_dict(A_SPEC)


def test_equal_content_is_one_value_with_one_hash():
    first = FunctionSpec.from_dict(A_SPEC)
    second = FunctionSpec.from_dict(
        {**A_SPEC, "secrets": list(reversed(A_SPEC["secrets"])), "retries": 3, "timeout": 600}
    )

    assert first == second and hash(first) == hash(second)
    assert first.canonical_json == second.canonical_json
    assert len({first, second}) == 1


def test_a_schedule_is_part_of_the_identity_as_written():
    # Equal fire times, but the function document shows the schedule as written.
    assert FunctionSpec(schedule="10m") != FunctionSpec(schedule="*/10 * * * *")


@pytest.mark.parametrize(
    "change", [{"cpu": "1"}, {"overlap": "skip"}, {"retries": 4}, {"image": Image.debian_slim()}]
)
def test_any_change_is_another_value(change):
    spec = FunctionSpec.from_dict(A_SPEC)
    changed = dataclasses.replace(spec, **change)

    assert changed != spec and changed.canonical_json != spec.canonical_json


def test_it_is_frozen():
    spec = FunctionSpec()
    with pytest.raises(dataclasses.FrozenInstanceError):
        spec.cpu = "1"


@pytest.mark.parametrize(
    "field, value, expected",
    [
        ("schedule", 5, 'must be a crontab such as "0 * * * *"'),
        ("schedule", "90m", "90 minutes is longer than 60 minutes"),
        ("image", {"python_version": "2.7"}, "python_version '2.7' is not supported"),
        ("image", "python:3.11", "an image spec must be an object"),
        ("secrets", "API_KEY", "must be a list of secret names"),
        ("secrets", ["API_KEY", "API_KEY"], "API_KEY is listed twice"),
        ("secrets", [f"K{n}" for n in range(101)], "a function reads at most 100"),
        ("cpu", "lots", "cpu 'lots' is not a Kubernetes quantity"),
        ("memory", "512m", "did you mean 512Mi"),
        ("gpu", "nvidia-rtx4090", "'nvidia-rtx4090' is not a known type"),
        ("gpu", 1, 'gpu must be a string such as "nvidia-l4"'),
        ("retries", 2.5, "retries must be a whole number"),
        ("retries", {"max_retries": 1, "backoff_coefficient": 0.5}, "from 1.0 to 10.0"),
        ("timeout", "10m", "must be a number of seconds"),
        ("timeout", 0, "must be more than 0"),
        ("timeout", 10**400, "holds a number too large to use"),
        ("overlap", "queue", 'must be "skip"'),
    ],
)
def test_it_names_the_field_that_breaks_a_rule(field, value, expected):
    [(path, message)] = problems({field: value})

    assert path == field
    assert expected in message


def test_it_names_each_bad_secret_by_its_place():
    assert [path for path, _ in problems({"secrets": ["OK", "not-ok", "1X"]})] == [
        "secrets[1]",
        "secrets[2]",
    ]


def test_it_lists_every_broken_rule_in_field_order():
    listed = problems({"overlap": "queue", "cpu": "lots", "schedule": "61 * * * *"})

    assert [path for path, _ in listed] == ["schedule", "cpu", "overlap"]


def test_its_error_says_each_problem_with_its_path():
    with pytest.raises(InvalidSpecError) as excinfo:
        FunctionSpec(timeout=-1, secrets=["a-b"])

    assert str(excinfo.value).startswith("secrets[0]: secret name 'a-b' must be usable")
    assert "; timeout: must be more than 0" in str(excinfo.value)


def test_it_refuses_unknown_fields_naming_them():
    assert problems({"cpu": "1", "shedule": "10m"}) == [
        (
            "shedule",
            "is not a field of a function spec; the fields are schedule, timezone, image, "
            "secrets, cpu, memory, gpu, retries, timeout, overlap, env, tags, alerts",
        )
    ]


def test_a_problem_reads_as_a_sentence_on_its_own():
    assert Problem("timeout", "must be a number").sentence == "timeout must be a number"
    assert Problem("cpu", "cpu 'x' is bad").sentence == "cpu 'x' is bad"


def test_the_decorator_builds_the_spec_once():
    def job():
        pass

    declared = chalkcompute.function(
        schedule="10m", secrets=[Secret.from_env("B_KEY"), Secret.from_name("A_KEY")], cpu=1
    )(job)

    assert declared.spec == FunctionSpec(schedule="10m", secrets=["A_KEY", "B_KEY"], cpu="1")
    assert (declared.cpu, declared.schedule, declared.overlap) == (
        "1",
        declared.spec.schedule,
        "skip",
    )
    assert declared.secrets == (Secret.from_env("B_KEY"), Secret.from_name("A_KEY"))


def test_the_deploy_payload_is_the_code_then_the_spec():
    def job():
        pass

    declared = chalkcompute.function(schedule="10m", timeout=600, retries=2)(job)

    payload = deploy_payload(declared, source="x = 1\n", source_filename="job.py")

    assert list(payload) == [
        "source", "source_filename", "entrypoint", "schedule", "timezone", "image", "secrets",
        "cpu", "memory", "gpu", "retries", "timeout", "overlap", "env", "tags", "alerts",
    ]  # fmt: skip
    assert payload == {
        "source": "x = 1\n",
        "source_filename": "job.py",
        "entrypoint": "job",
        **FunctionSpec(schedule="10m", timeout=600, retries=2).as_dict(),
    }


def test_the_decorator_raises_the_specs_first_problem_as_a_sentence():
    def job():
        pass

    with pytest.raises(chalkcompute.InvalidFunctionError) as excinfo:
        chalkcompute.function(timeout="10m", overlap="queue")(job)

    assert str(excinfo.value) == (
        "@chalkcompute.function on test_the_decorator_raises_the_specs_first_problem_as_a_"
        "sentence.<locals>.job: timeout must be a number of seconds, e.g. 600, not '10m'"
    )


# --- what the API document declares, each rule accepts ----------------------------------------


def _strings(schema: dict) -> st.SearchStrategy:
    pattern = schema.get("pattern", r"^[^\u0000]*$")
    strings = st.from_regex(re.compile(pattern), fullmatch=True)
    return strings.filter(lambda text: len(text) <= schema.get("maxLength", 10**6))


@pytest.mark.parametrize("name", ["schedule", "cpu", "memory", "gpu"])
@settings(max_examples=100, deadline=None)
@given(data=st.data())
def test_a_string_the_schema_admits_is_accepted(name, data):
    value = data.draw(_strings(FunctionSpec.schema(name)))

    assert FunctionSpec.check_field(name, value) is not None


@settings(max_examples=100, deadline=None)
@given(names=st.lists(_strings(FunctionSpec.schema("secrets")["items"]), max_size=100, unique=True))
def test_secret_names_the_schema_admits_are_accepted(names):
    assert FunctionSpec(secrets=names).secrets == tuple(sorted(names))


_NUMBER_BOUNDS = FunctionSpec.schema("retries")["oneOf"][1]["properties"]


def _number(schema: dict) -> st.SearchStrategy:
    return st.floats(schema["minimum"], schema["maximum"])


@settings(max_examples=100, deadline=None)
@given(
    timeout=st.floats(0, FunctionSpec.schema("timeout")["maximum"], exclude_min=True),
    count=st.integers(0, FunctionSpec.schema("retries")["oneOf"][0]["maximum"]),
    policy=st.fixed_dictionaries(
        {"max_retries": st.integers(0, 100)},
        optional={
            name: _number(_NUMBER_BOUNDS[name])
            for name in ("backoff_coefficient", "initial_delay", "max_delay")
        },
    ),
)
def test_numbers_the_schema_admits_are_accepted(timeout, count, policy):
    # The one rule between two fields, which the schema states in words only.
    assume(policy.get("max_delay", 60.0) >= policy.get("initial_delay", 1.0))
    spec = FunctionSpec(timeout=timeout, retries=count)
    assert (spec.timeout, spec.retries.max_retries) == (timeout, count)
    assert FunctionSpec(retries=policy).retries.max_retries == policy["max_retries"]


def test_it_refuses_a_max_delay_shorter_than_the_initial_delay():
    with pytest.raises(
        ValueError, match=r"max_delay \(5.0\) must not be shorter than initial_delay"
    ):
        FunctionSpec(retries={"max_retries": 1, "initial_delay": 10, "max_delay": 5})


@settings(max_examples=100, deadline=None)
@given(data=st.data())
def test_image_steps_the_schema_admits_are_accepted(data):
    step_schemas = FunctionSpec.schema("image")["properties"]["steps"]["items"]["oneOf"]
    steps = []
    for schema in data.draw(st.lists(st.sampled_from(step_schemas), max_size=4)):
        [(kind, items)] = schema["properties"].items()
        if kind == "env":
            values = _strings(items["additionalProperties"])
            names = st.from_regex(r"[A-Za-z_][A-Za-z0-9_]{0,20}", fullmatch=True)
            steps.append({kind: data.draw(st.dictionaries(names, values, min_size=1))})
        else:
            steps.append({kind: data.draw(st.lists(_strings(items["items"]), min_size=1))})

    image = FunctionSpec.check_field("image", {"steps": steps})

    assert image.spec["steps"] == [
        {kind: dict(sorted(items.items())) if kind == "env" else items}
        for step in steps
        for kind, items in step.items()
    ]
