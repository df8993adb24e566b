"""The one settings object: JOURNEY_* environment, init kwargs winning, secrets kept secret."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from pydantic import SecretStr, ValidationError

from journey.settings import Settings


@pytest.fixture(autouse=True)
def clean_env(monkeypatch):
    """Tests see only the JOURNEY_* variables they set themselves."""
    for name in list(os.environ):
        if name.upper().startswith("JOURNEY_"):
            monkeypatch.delenv(name)


def test_defaults():
    settings = Settings()
    assert settings.broker_list == ["127.0.0.1:9092"]
    assert settings.align_max_idle_ms == 500
    assert settings.clickhouse_password is None
    assert settings.rules_file is None
    assert settings.input_topics == {
        "clickstream": "journey.clickstream",
        "purchase": "journey.purchases",
        "share": "journey.shares",
    }


def test_journey_variables_are_read(monkeypatch):
    monkeypatch.setenv("JOURNEY_KAFKA_BROKERS", "k1:9092, k2:9093")
    monkeypatch.setenv("JOURNEY_PARTITIONS", "4")
    monkeypatch.setenv("JOURNEY_ALIGN_MAX_IDLE_MS", "250")
    monkeypatch.setenv("JOURNEY_ROLE", "sink")
    monkeypatch.setenv("JOURNEY_TOPIC_SHARES", "acme.shares")
    monkeypatch.setenv("JOURNEY_RULES_FILE", "/etc/journey/rules.toml")
    monkeypatch.setenv("JOURNEY_CLICKHOUSE_PASSWORD", "hunter2")
    monkeypatch.setenv("JOURNEY_PRODUCER_IDEMPOTENCE", "false")
    settings = Settings()
    assert settings.broker_list == ["k1:9092", "k2:9093"]
    assert settings.partitions == 4
    assert settings.align_max_idle_ms == 250
    assert settings.role == "sink"
    assert settings.input_topics["share"] == "acme.shares"
    assert settings.rules_file == Path("/etc/journey/rules.toml")
    assert settings.clickhouse_password.get_secret_value() == "hunter2"
    assert settings.producer_idempotence is False


def test_variables_without_the_prefix_are_ignored(monkeypatch):
    monkeypatch.setenv("PARTITIONS", "3")
    monkeypatch.setenv("KAFKA_BROKERS", "elsewhere:1")
    settings = Settings()
    assert (settings.partitions, settings.kafka_brokers) == (8, "127.0.0.1:9092")


def test_an_unknown_journey_variable_does_not_break_startup(monkeypatch):
    monkeypatch.setenv("JOURNEY_NOT_A_SETTING", "1")
    assert Settings().partitions == 8


def test_init_kwargs_win_over_the_environment(monkeypatch):
    monkeypatch.setenv("JOURNEY_PARTITIONS", "4")
    monkeypatch.setenv("JOURNEY_CLICKHOUSE_PASSWORD", "from-env")
    settings = Settings(partitions=2, clickhouse_password="from-flag")
    assert settings.partitions == 2
    assert settings.clickhouse_password.get_secret_value() == "from-flag"


def test_password_is_never_shown(monkeypatch):
    monkeypatch.setenv("JOURNEY_CLICKHOUSE_PASSWORD", "hunter2")
    settings = Settings()
    assert isinstance(settings.clickhouse_password, SecretStr)
    for text in (repr(settings), str(settings), settings.model_dump_json(), repr(settings.model_dump())):
        assert "hunter2" not in text


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("kafka_brokers", "localhost"),
        ("kafka_brokers", "a:9092,b"),
        ("topic_clickstream", "has space"),
        ("partitions", "0"),
        ("align_max_idle_ms", "-1"),
        ("role", "everything"),
        ("metrics_port", "70000"),
    ],
)
def test_bad_values_are_rejected(monkeypatch, field, value):
    monkeypatch.setenv(f"JOURNEY_{field.upper()}", value)
    with pytest.raises(ValidationError) as info:
        Settings()
    assert field in str(info.value)


def test_unknown_init_kwarg_is_rejected():
    with pytest.raises(ValidationError):
        Settings(partitons=3)  # type: ignore[call-arg]


def test_settings_are_frozen():
    settings = Settings()
    with pytest.raises(ValidationError):
        settings.partitions = 3  # type: ignore[misc]


def test_all_topics_lists_inputs_then_outputs():
    assert Settings().all_topics == [
        "journey.clickstream",
        "journey.purchases",
        "journey.shares",
        "journey.segment",
        "journey.rekeyed",
        "journey.identity",
        "journey.transitions",
        "journey.deadletter",
    ]


def test_every_setting_is_documented_in_the_readme():
    from pathlib import Path

    readme = (Path(__file__).resolve().parents[2] / "README.md").read_text()
    for name in Settings.model_fields:
        assert f"`JOURNEY_{name.upper()}`" in readme, name
