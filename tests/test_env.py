"""The typed environment readers (chalkweb/env.py): a value they cannot read stops the process
with Django's ImproperlyConfigured and says what to set instead."""

import pytest
from django.core.exceptions import ImproperlyConfigured

from chalkweb.env import env_choice, env_int, env_json_object, env_str

GPU_KEYS = ("node_selector", "tolerations")
GPU_EXAMPLE = '{"node_selector": {"gpu": "l4"}}'


def test_it_reads_a_choice_or_its_default(monkeypatch):
    monkeypatch.delenv("CHALK_TEST_EXECUTOR", raising=False)
    assert env_choice("CHALK_TEST_EXECUTOR", ("local", "kubernetes"), "local") == "local"
    monkeypatch.setenv("CHALK_TEST_EXECUTOR", "kubernetes")
    assert env_choice("CHALK_TEST_EXECUTOR", ("local", "kubernetes"), "local") == "kubernetes"


@pytest.mark.parametrize(
    ("choices", "words"),
    [(("local",), "use local"), (("local", "kubernetes"), "use local or kubernetes"),
     (("a", "b", "c"), "use a, b or c")],
)  # fmt: skip
def test_it_refuses_a_value_that_is_not_a_choice(monkeypatch, choices, words):
    monkeypatch.setenv("CHALK_TEST_EXECUTOR", "nomad")
    with pytest.raises(ImproperlyConfigured) as raised:
        env_choice("CHALK_TEST_EXECUTOR", choices, choices[0])
    assert str(raised.value) == f"CHALK_TEST_EXECUTOR='nomad': {words}"


def test_it_reads_a_json_object_or_none(monkeypatch):
    monkeypatch.delenv("CHALK_TEST_MAP", raising=False)
    assert env_json_object("CHALK_TEST_MAP") is None
    monkeypatch.setenv("CHALK_TEST_MAP", '{"nvidia-l4": {"node_selector": {"gpu": "l4"}}}')
    assert env_json_object("CHALK_TEST_MAP", value_keys=GPU_KEYS) == {
        "nvidia-l4": {"node_selector": {"gpu": "l4"}}
    }


@pytest.mark.parametrize(
    ("raw", "message"),
    [
        ("{nope", "CHALK_TEST_MAP is not valid JSON: Expecting property name enclosed in double "
                  "quotes: line 1 column 2 (char 1)"),
        ('["nvidia-l4"]', "CHALK_TEST_MAP must be a JSON object, not list"),
        ('{"nvidia-l4": "l4"}', "CHALK_TEST_MAP['nvidia-l4'] must be an object with only "
                                f'"node_selector" and "tolerations", e.g. {GPU_EXAMPLE}'),
        ('{"nvidia-l4": {"nodeSelector": {}}}', "CHALK_TEST_MAP['nvidia-l4'] must be an object "
         f'with only "node_selector" and "tolerations", e.g. {GPU_EXAMPLE}'),
    ],
)  # fmt: skip
def test_it_refuses_json_of_the_wrong_shape(monkeypatch, raw, message):
    monkeypatch.setenv("CHALK_TEST_MAP", raw)
    with pytest.raises(ImproperlyConfigured) as raised:
        env_json_object("CHALK_TEST_MAP", value_keys=GPU_KEYS, example=GPU_EXAMPLE)
    assert str(raised.value) == message


def test_every_reader_raises_djangos_improperly_configured(monkeypatch, tmp_path):
    monkeypatch.setenv("CHALK_TEST_NUMBER", "ten")
    with pytest.raises(ImproperlyConfigured, match="CHALK_TEST_NUMBER='ten' is not a whole number"):
        env_int("CHALK_TEST_NUMBER", 1)
    monkeypatch.setenv("CHALK_TEST_SECRET_FILE", str(tmp_path / "missing"))
    with pytest.raises(ImproperlyConfigured, match="CHALK_TEST_SECRET_FILE=.* cannot be read"):
        env_str("CHALK_TEST_SECRET")
