"""The one settings object. Nothing else in the project reads the environment.

Every field can be set as a CLI flag or as a `JOURNEY_<FIELD>` environment variable
(flags win). Secrets are `SecretStr`: they never appear in logs, errors or `--help`.
"""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import Field, SecretStr, field_validator, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

TOPIC_NAME = r"^[A-Za-z0-9._-]{1,249}$"


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="JOURNEY_", frozen=True, extra="forbid")

    # Kafka
    kafka_brokers: str = Field("127.0.0.1:9092", description="comma-separated host:port list")
    kafka_security_protocol: Literal["PLAINTEXT", "SSL", "SASL_PLAINTEXT", "SASL_SSL"] = Field(
        "PLAINTEXT", description="how clients talk to Kafka (TLS and/or SASL)"
    )
    kafka_sasl_mechanism: Literal["PLAIN", "SCRAM-SHA-256", "SCRAM-SHA-512"] = Field(
        "PLAIN", description="SASL mechanism (with SASL_* protocols)"
    )
    kafka_sasl_username: str | None = Field(None, description="SASL user")
    kafka_sasl_password: SecretStr | None = Field(None, description="SASL password")
    kafka_ssl_cafile: Path | None = Field(None, description="CA bundle that signed the brokers' certificates")
    kafka_ssl_certfile: Path | None = Field(None, description="client certificate (mutual TLS)")
    kafka_ssl_keyfile: Path | None = Field(None, description="client private key (mutual TLS)")
    topic_clickstream: str = Field("journey.clickstream", pattern=TOPIC_NAME, description="input: clickstream events")
    topic_purchases: str = Field("journey.purchases", pattern=TOPIC_NAME, description="input: purchase events")
    topic_shares: str = Field("journey.shares", pattern=TOPIC_NAME, description="input: share events")
    topic_segment: str = Field(
        "journey.segment", pattern=TOPIC_NAME,
        description="input: Segment Spec messages (track, page, screen, identify, alias; DESIGN.md §2b)"
    )
    segment_brand: str = Field(
        "default", min_length=1, max_length=100,
        description="brand of the Segment topic's messages (unless the rules take it from properties.brand)"
    )
    topic_transitions: str = Field(
        "journey.transitions", pattern=TOPIC_NAME, description="output: stage transitions (JSON)"
    )
    topic_deadletter: str = Field(
        "journey.deadletter", pattern=TOPIC_NAME, description="output: rejected records with reasons"
    )
    topic_rekeyed: str = Field(
        "journey.rekeyed", pattern=TOPIC_NAME, description="events re-published keyed by customer"
    )
    topic_identity: str = Field(
        "journey.identity", pattern=TOPIC_NAME,
        description="links and merges between an anonymous id's partition and its customer's (README, Identity)"
    )
    partitions: int = Field(8, ge=1, le=10_000, description="partitions of every journey topic")
    group_id: str = Field("journey5a", pattern=TOPIC_NAME, description="consumer group of the path (the sink uses <id>-sink)")
    session_timeout_s: float = Field(30.0, gt=0, description="consumer session timeout")
    commit_interval_s: float = Field(1.0, gt=0, description="offset commit interval")
    producer_max_batch_size: int = Field(
        16384, ge=1, description="bytes per produce batch (1 only for the Tansu test broker)"
    )

    producer_idempotence: bool = Field(
        True, description="idempotent producer for `journey produce` (off for brokers without it, e.g. Tansu)"
    )

    # Stream semantics
    rules_file: Path | None = Field(None, description="TOML rule table; defaults per DESIGN.md §1")
    align_max_idle_ms: int = Field(500, ge=0, description="max wait for a lagging input partition")
    max_event_bytes: int = Field(65_536, ge=256, description="larger payloads are dead-lettered")
    max_record_bytes: int = Field(
        1_000_000, ge=600_000,  # a dead letter carries up to 512 KiB of the refused payload
        description="largest record the worker writes (its producer's max request size; Apache Kafka "
        "refuses records over ~1 MB by default). Customer states stay under 1 KB however long a "
        "customer's history; rekeyed events are at most max_event_bytes",
    )

    # Customer state
    state_store: Literal["memory", "rocksdb"] = Field(
        "memory",
        description="where the path keeps customer states: memory, or rocksdb on local disk (larger "
        "populations, fast restarts); the changelog topic backs both",
    )
    state_dir: Path = Field(
        Path("journey-state"),
        description="rocksdb store's directory, one per worker (<dir>/<changelog topic>/<partition>)",
    )

    # ClickHouse
    clickhouse_url: str = Field(
        "clickhouse://default@127.0.0.1:9000/journey",
        description="clickhouse://user[:password]@host:port/database[?secure=1]",
    )
    clickhouse_password: SecretStr | None = Field(None, description="overrides the URL's password")
    clickhouse_cluster: str | None = Field(
        None, pattern=r"^[A-Za-z_][A-Za-z0-9_]{0,63}$",
        description="a cluster of the servers' remote_servers: `journey migrate` creates Replicated tables "
        "ON CLUSTER with Distributed tables in front, and the sink inserts synchronously through them; "
        "unset: one server",
    )
    sink_batch_rows: int = Field(10_000, ge=1, description="insert when this many rows are buffered")
    sink_batch_seconds: float = Field(1.0, gt=0, description="... or when the oldest is this old")

    # Worker
    role: Literal["all", "stream", "sink"] = Field("all", description="which agents this worker runs")
    metrics_host: str = Field("0.0.0.0", description="bind address of /metrics and /healthz")
    metrics_port: int = Field(9464, ge=0, le=65535, description="0 disables the endpoint")
    log_level: Literal["debug", "info", "warning", "error"] = Field("info", description="worker log level")

    @field_validator("clickhouse_cluster", mode="before")
    @classmethod
    def _empty_cluster_is_none(cls, value: object) -> object:
        # `JOURNEY_CLICKHOUSE_CLUSTER=` (docker-compose's `${JOURNEY_CLICKHOUSE_CLUSTER:-}`): one server.
        return None if value == "" else value

    @field_validator("kafka_brokers")
    @classmethod
    def _brokers_have_ports(cls, value: str) -> str:
        for broker in value.split(","):
            host, _, port = broker.strip().rpartition(":")
            if not host or not port.isdigit():
                raise ValueError(f"broker {broker!r} is not host:port")
        return value

    @model_validator(mode="after")
    def _sasl_needs_credentials(self) -> "Settings":
        if self.kafka_security_protocol.startswith("SASL") and not (
            self.kafka_sasl_username and self.kafka_sasl_password
        ):
            raise ValueError("SASL needs JOURNEY_KAFKA_SASL_USERNAME and JOURNEY_KAFKA_SASL_PASSWORD")
        return self

    @model_validator(mode="after")
    def _events_fit_records(self) -> "Settings":
        if self.max_event_bytes + 4096 > self.max_record_bytes:  # a rekeyed event plus its key and headers
            raise ValueError(f"JOURNEY_MAX_EVENT_BYTES ({self.max_event_bytes}) must stay 4096 below "
                             f"JOURNEY_MAX_RECORD_BYTES ({self.max_record_bytes}): rekeyed events are re-published whole")
        return self

    @property
    def broker_list(self) -> list[str]:
        return [b.strip() for b in self.kafka_brokers.split(",")]

    @property
    def input_topics(self) -> dict[str, str]:
        """Event type -> topic."""
        return {
            "clickstream": self.topic_clickstream,
            "purchase": self.topic_purchases,
            "share": self.topic_shares,
        }

    def topic_for(self, event_type: str) -> str | None:
        """The input topic of an event type (identify events travel with the clickstream)."""
        return self.topic_clickstream if event_type == "identify" else self.input_topics.get(event_type)

    @property
    def all_topics(self) -> list[str]:
        return [
            *self.input_topics.values(),
            self.topic_segment,
            self.topic_rekeyed,
            self.topic_identity,
            self.topic_transitions,
            self.topic_deadletter,
        ]
