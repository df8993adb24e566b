"""TLS/SASL settings reach every Kafka client, and secrets stay secret."""

from __future__ import annotations

import asyncio
import ssl
import subprocess
import sys

import pytest
from pydantic import ValidationError

from journey.kafka_security import kafka_client_config
from journey.settings import Settings
from streams.kafka_io import new_producer


def producer_client(settings: Settings):  # aiokafka clients are made inside a running loop
    async def make():
        return new_producer(settings).client

    return asyncio.run(make())


def test_plaintext_is_the_default_and_adds_nothing() -> None:
    settings = Settings()
    assert kafka_client_config(settings) == {"security_protocol": "PLAINTEXT"}


def test_sasl_ssl_scram_reaches_kafka_python_and_aiokafka() -> None:
    settings = Settings(
        kafka_security_protocol="SASL_SSL",
        kafka_sasl_mechanism="SCRAM-SHA-512",
        kafka_sasl_username="journey",
        kafka_sasl_password="p4ss",
    )
    config = kafka_client_config(settings)
    assert config["security_protocol"] == "SASL_SSL"
    assert config["sasl_mechanism"] == "SCRAM-SHA-512"
    assert (config["sasl_plain_username"], config["sasl_plain_password"]) == ("journey", "p4ss")
    assert isinstance(config["ssl_context"], ssl.SSLContext)
    client = producer_client(settings)  # the worker's aiokafka clients
    assert client._security_protocol == "SASL_SSL"
    assert client._sasl_mechanism == "SCRAM-SHA-512"
    assert (client._sasl_plain_username, client._sasl_plain_password) == ("journey", "p4ss")
    assert isinstance(client._ssl_context, ssl.SSLContext)


def test_tls_only_gives_an_ssl_context() -> None:
    settings = Settings(kafka_security_protocol="SSL")
    assert "sasl_mechanism" not in kafka_client_config(settings)
    assert producer_client(settings)._security_protocol == "SSL"


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
