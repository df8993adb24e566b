"""TLS and credentials end to end (issue 18): real encrypted connections, not only settings.

Kafka over TLS: Debian's stunnel terminates TLS in front of a Tansu broker whose advertised
listener is the stunnel port, so every client (the worker's aiokafka clients, `journey produce`,
`journey topics`, the start-up checks) talks TLS. A second pair requires client certificates
(mutual TLS). ClickHouse 18.16 serves its secure native port with a user that has a password.
The CA and certificates are made by the fixture (tests/support/tls.py). Each refusal is one line
that names the cause and the setting; no secret appears anywhere the user can see.
"""

from __future__ import annotations

import os
import subprocess
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest

from journey.local import LocalService, free_port, start_broker, start_clickhouse, start_tls_proxy
from tests.integration.test_faults import write_events
from tests.support.pipeline import JOURNEY, Pipeline, scrape
from tests.support.tls import Pki, make_pki

pytestmark = pytest.mark.integration

PASSWORD = "c0rrect-h0rse-battery"  # the ClickHouse user's; must never be shown


class TlsKafka:
    """A Tansu broker behind stunnel: clients only ever see the TLS port."""

    def __init__(self, workdir: Path, pki: Pki, mutual: bool) -> None:
        port = free_port()
        self.broker = start_broker(workdir / "tansu", advertised_port=port)
        self.proxy = start_tls_proxy(workdir / "stunnel", self.broker.port, pki.server_cert, pki.server_key,
                                     client_ca=pki.ca if mutual else None, port=port, also_on=("127.0.0.2",))

    def stop(self) -> None:
        self.proxy.stop()
        self.broker.stop()


@pytest.fixture(scope="module")
def pki(tmp_path_factory: pytest.TempPathFactory) -> Pki:
    return make_pki(tmp_path_factory.mktemp("pki"))


@pytest.fixture(scope="module")
def tls_kafka(tmp_path_factory: pytest.TempPathFactory, pki: Pki) -> Iterator[TlsKafka]:
    kafka = TlsKafka(tmp_path_factory.mktemp("kafka-tls"), pki, mutual=False)
    yield kafka
    kafka.stop()


@pytest.fixture(scope="module")
def mtls_kafka(tmp_path_factory: pytest.TempPathFactory, pki: Pki) -> Iterator[TlsKafka]:
    kafka = TlsKafka(tmp_path_factory.mktemp("kafka-mtls"), pki, mutual=True)
    yield kafka
    kafka.stop()


@pytest.fixture(scope="module")
def tls_clickhouse(tmp_path_factory: pytest.TempPathFactory, pki: Pki) -> Iterator[LocalService]:
    service = start_clickhouse(tmp_path_factory.mktemp("clickhouse-tls"), tls=(pki.server_cert, pki.server_key),
                               users={"journey": PASSWORD})
    yield service
    service.stop()


def tls_pipeline(kafka: TlsKafka, clickhouse: LocalService, pki: Pki, workdir: Path, *, client_cert: bool) -> Pipeline:
    pipeline = Pipeline(kafka.proxy, clickhouse, workdir)
    secure = clickhouse.ports["tcp_secure"]
    pipeline.settings_env = {
        "JOURNEY_KAFKA_SECURITY_PROTOCOL": "SSL",
        "JOURNEY_KAFKA_SSL_CAFILE": str(pki.ca),
        "JOURNEY_CLICKHOUSE_URL": f"clickhouses://journey@localhost:{secure}/{pipeline.database}?ca={pki.ca}",
        "JOURNEY_CLICKHOUSE_PASSWORD": PASSWORD,
    }
    if client_cert:
        pipeline.settings_env.update(JOURNEY_KAFKA_SSL_CERTFILE=str(pki.client_cert),
                                     JOURNEY_KAFKA_SSL_KEYFILE=str(pki.client_key))
    return pipeline


def secrets(pki: Pki) -> list[str]:
    """What must never be shown: the password and the private keys' contents."""
    keys = [line for path in (pki.client_key, pki.server_key) for line in path.read_text().splitlines()
            if line and not line.startswith("-----")]
    return [PASSWORD, *keys[:3]]


def assert_no_secret(text: str, pki: Pki, where: str) -> None:
    for secret in secrets(pki):
        assert secret not in text, f"a secret appears in {where}"


def run_and_check_secrets(pipeline: Pipeline, pki: Pki, events: Path, worker_port: int) -> None:
    pipeline.assert_equals_replay(events)
    with urllib.request.urlopen(f"http://127.0.0.1:{worker_port}/metrics", timeout=5) as response:
        assert_no_secret(response.read().decode(), pki, "/metrics")
    assert scrape(worker_port)["journey_sink_clickhouse_up"] == 1
    pipeline.stop_workers()
    for log in pipeline.workdir.glob("worker-*.log"):
        assert_no_secret(log.read_text(errors="replace"), pki, log.name)
    for args in (["--help"], ["worker", "--help"], ["migrate", "--help"]):
        assert_no_secret(pipeline.journey(*args).stdout.decode(), pki, f"journey {' '.join(args)}")


def test_the_pipeline_over_tls_with_a_clickhouse_password(tls_kafka, tls_clickhouse, pki, tmp_path: Path) -> None:
    pipeline = tls_pipeline(tls_kafka, tls_clickhouse, pki, tmp_path, client_cert=False)
    try:
        pipeline.setup()  # journey topics and journey migrate, over TLS
        events = write_events(tmp_path / "events.jsonl", 300, seed=181)
        produced = pipeline.journey("produce", str(events))
        assert_no_secret(produced.stderr.decode(), pki, "journey produce")
        _, port = pipeline.start_worker()
        run_and_check_secrets(pipeline, pki, events, port)
    finally:
        pipeline.stop_workers()
    stunnel_log = tls_kafka.proxy.log_path.read_text(errors="replace")
    assert "connected remote server" in stunnel_log  # the bytes did cross the TLS proxy


def test_the_pipeline_over_mutual_tls(mtls_kafka, tls_clickhouse, pki, tmp_path: Path) -> None:
    pipeline = tls_pipeline(mtls_kafka, tls_clickhouse, pki, tmp_path, client_cert=True)
    try:
        pipeline.setup()
        events = write_events(tmp_path / "events.jsonl", 200, seed=183)
        pipeline.journey("produce", str(events))
        _, port = pipeline.start_worker()
        run_and_check_secrets(pipeline, pki, events, port)
    finally:
        pipeline.stop_workers()


def one_line_refusal(pipeline: Pipeline, *args: str, **env: str) -> str:
    result = pipeline.journey(*args, check=False, **env)
    stderr = result.stderr.decode()
    assert result.returncode == 2, stderr
    assert "Traceback" not in stderr
    return stderr.strip().splitlines()[-1]


@pytest.mark.parametrize("case", ["unknown CA", "hostname", "no client certificate", "untrusted client certificate"])
def test_kafka_tls_refusals_name_the_cause_and_the_setting(tls_kafka, mtls_kafka, tls_clickhouse, pki,
                                                           tmp_path: Path, case: str) -> None:
    mutual = case in ("no client certificate", "untrusted client certificate")
    pipeline = tls_pipeline(mtls_kafka if mutual else tls_kafka, tls_clickhouse, pki, tmp_path, client_cert=False)
    port = pipeline.broker.port
    env, expected = {
        "unknown CA": ({"JOURNEY_KAFKA_SSL_CAFILE": str(pki.stranger_ca)},
                       ("is not trusted", "JOURNEY_KAFKA_SSL_CAFILE")),
        "hostname": ({"JOURNEY_KAFKA_BROKERS": f"127.0.0.2:{port}"},
                     ("not valid for '127.0.0.2'", "JOURNEY_KAFKA_BROKERS")),
        "no client certificate": ({}, ("client certificate", "JOURNEY_KAFKA_SSL_CERTFILE")),
        "untrusted client certificate": ({"JOURNEY_KAFKA_SSL_CERTFILE": str(pki.stranger_cert),
                                          "JOURNEY_KAFKA_SSL_KEYFILE": str(pki.stranger_key)},
                                         ("certificate", "JOURNEY_KAFKA_SSL_CERTFILE")),
    }[case]
    # Every command checks Kafka the same way first; the worker too, shown where aiokafka alone would
    # only say "connection closed".
    for command in (["topics"], ["worker"]) if case == "no client certificate" else (["topics"],):
        line = one_line_refusal(pipeline, *command, **env)
        assert all(part in line for part in expected), line
        assert "cannot reach" not in line


def test_clickhouse_refusals_name_the_cause_and_the_setting(tls_clickhouse, pki, tmp_path: Path) -> None:
    secure = tls_clickhouse.ports["tcp_secure"]
    base = f"clickhouses://journey@localhost:{secure}/journey"
    cases = {
        "wrong password": ({"JOURNEY_CLICKHOUSE_URL": f"{base}?ca={pki.ca}", "JOURNEY_CLICKHOUSE_PASSWORD": "wrong"},
                           ("refused user 'journey'", "JOURNEY_CLICKHOUSE_PASSWORD")),
        "unknown CA": ({"JOURNEY_CLICKHOUSE_URL": f"{base}?ca={pki.stranger_ca}", "JOURNEY_CLICKHOUSE_PASSWORD": PASSWORD},
                       ("does not trust", "?ca=")),
        "plaintext port": ({"JOURNEY_CLICKHOUSE_URL": f"clickhouses://journey@localhost:{tls_clickhouse.port}/journey",
                            "JOURNEY_CLICKHOUSE_PASSWORD": PASSWORD}, ("does not speak TLS", "secure port")),
    }
    for name, (env, expected) in cases.items():
        result = subprocess.run([*JOURNEY, "migrate"], env={**_clean_env(), **env}, capture_output=True, timeout=120)
        stderr = result.stderr.decode()
        assert result.returncode == 2, (name, stderr)
        line = stderr.strip().splitlines()[-1]
        assert all(part in line for part in expected), (name, line)
        assert PASSWORD not in stderr and "Traceback" not in stderr


def _clean_env() -> dict[str, str]:
    return {k: v for k, v in os.environ.items() if not k.startswith("JOURNEY_")}

