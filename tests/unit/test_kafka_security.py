"""TLS/SASL settings reach every Kafka client, and secrets stay secret."""

from __future__ import annotations

import ssl
import subprocess
import sys

import pytest
from pydantic import ValidationError

from journey.kafka_security import faust_credentials, kafka_python_config
from journey.settings import Settings
from streams.app import faust_settings


def test_plaintext_is_the_default_and_adds_nothing() -> None:
    settings = Settings()
    assert kafka_python_config(settings) == {"security_protocol": "PLAINTEXT"}
    assert faust_credentials(settings) is None


def test_sasl_ssl_scram_reaches_kafka_python_and_faust() -> None:
    settings = Settings(
        kafka_security_protocol="SASL_SSL",
        kafka_sasl_mechanism="SCRAM-SHA-512",
        kafka_sasl_username="journey",
        kafka_sasl_password="p4ss",
    )
    config = kafka_python_config(settings)
    assert config["security_protocol"] == "SASL_SSL"
    assert config["sasl_mechanism"] == "SCRAM-SHA-512"
    assert (config["sasl_plain_username"], config["sasl_plain_password"]) == ("journey", "p4ss")
    assert isinstance(config["ssl_context"], ssl.SSLContext)
    credentials = faust_settings(settings)["broker_credentials"]
    assert credentials.protocol.value == "SASL_SSL"
    assert credentials.mechanism.value == "SCRAM-SHA-512"
    assert credentials.username == "journey" and credentials.password == "p4ss"


def test_tls_only_gives_an_ssl_context() -> None:
    settings = Settings(kafka_security_protocol="SSL")
    assert "sasl_mechanism" not in kafka_python_config(settings)
    assert faust_credentials(settings).protocol.value == "SSL"


def test_sasl_without_credentials_is_refused() -> None:
    with pytest.raises(ValidationError, match="JOURNEY_KAFKA_SASL_USERNAME"):
        Settings(kafka_security_protocol="SASL_PLAINTEXT")


def test_secrets_never_show_in_repr_or_help(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("JOURNEY_KAFKA_SASL_PASSWORD", "kafka-s3cret")
    monkeypatch.setenv("JOURNEY_CLICKHOUSE_PASSWORD", "ch-s3cret")
    monkeypatch.setenv("JOURNEY_KAFKA_SASL_USERNAME", "u")
    monkeypatch.setenv("JOURNEY_KAFKA_SECURITY_PROTOCOL", "SASL_PLAINTEXT")
    settings = Settings()
    assert "s3cret" not in repr(settings) and "s3cret" not in str(settings.model_dump())
    result = subprocess.run([sys.executable, "-m", "journey.cli", "worker", "--help"],
                            capture_output=True, text=True, check=True)
    assert "s3cret" not in result.stdout
