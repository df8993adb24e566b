"""TLS and SASL settings, translated once for each Kafka client the project uses, and what a
failed TLS connection means in words.

The Kafka clients hide why TLS failed (kafka-python logs it and reports "no brokers available";
aiokafka reports a refused client certificate only as "connection closed"), so when a TLS
connection fails, `tls_problem` makes one handshake itself and names the cause and the setting.
"""

from __future__ import annotations

import socket
import ssl
from collections.abc import Mapping, Sequence
from typing import Any

from journey.settings import Settings


def ssl_context(settings: Settings) -> ssl.SSLContext | None:
    if not settings.kafka_security_protocol.endswith("SSL"):
        return None
    context = ssl.create_default_context(
        cafile=str(settings.kafka_ssl_cafile) if settings.kafka_ssl_cafile else None
    )
    if settings.kafka_ssl_certfile:
        context.load_cert_chain(
            str(settings.kafka_ssl_certfile),
            str(settings.kafka_ssl_keyfile) if settings.kafka_ssl_keyfile else None,
        )
    return context


def kafka_client_config(settings: Settings) -> dict[str, Any]:
    """Keyword arguments for kafka-python's and aiokafka's clients (they share these names)."""
    config: dict[str, Any] = {"security_protocol": settings.kafka_security_protocol}
    context = ssl_context(settings)
    if context is not None:
        config["ssl_context"] = context
    if settings.kafka_security_protocol.startswith("SASL"):
        assert settings.kafka_sasl_password is not None  # checked by Settings
        config.update(
            sasl_mechanism=settings.kafka_sasl_mechanism,
            sasl_plain_username=settings.kafka_sasl_username,
            sasl_plain_password=settings.kafka_sasl_password.get_secret_value(),
        )
    return config


def tls_problem(brokers: Sequence[str], security: Mapping[str, Any], timeout_s: float = 5.0) -> str | None:
    """Why TLS to the first broker that accepts a connection fails (cause and fix); None if it does not."""
    context = security.get("ssl_context")
    if context is None:
        return None
    for broker in brokers:
        host, _, port = broker.strip().rpartition(":")
        host = host.strip("[]")
        try:
            raw = socket.create_connection((host, int(port)), timeout=timeout_s)
        except (OSError, ValueError):
            continue  # not reachable at all: not a TLS problem
        try:
            return _handshake(context, raw, host, broker, timeout_s)
        finally:
            raw.close()
    return None


def _handshake(context: ssl.SSLContext, raw: socket.socket, host: str, broker: str, timeout_s: float) -> str | None:
    fix_client = "check JOURNEY_KAFKA_SSL_CERTFILE and JOURNEY_KAFKA_SSL_KEYFILE"
    try:
        with context.wrap_socket(raw, server_hostname=host) as tls:
            # A broker says nothing until asked; with TLS 1.3 a refused client certificate only
            # shows after the handshake, as an alert or a closed connection on the first read.
            tls.settimeout(min(1.0, timeout_s))
            try:
                if tls.recv(1) == b"":
                    return (f"Kafka at {broker} closed the connection right after the TLS handshake: it refused "
                            f"this client's certificate or requires one (mutual TLS) — {fix_client}")
            except (socket.timeout, TimeoutError):
                return None
    except ssl.SSLCertVerificationError as exc:
        if exc.verify_code == 62 or "mismatch" in str(exc).lower():  # X509_V_ERR_HOSTNAME_MISMATCH
            return (f"Kafka at {broker}: its certificate is not valid for {host!r} — list the brokers in "
                    "JOURNEY_KAFKA_BROKERS by a name their certificates carry")
        return (f"Kafka at {broker}: its certificate is not trusted ({exc.verify_message}) — set "
                "JOURNEY_KAFKA_SSL_CAFILE to the CA that signed the brokers' certificates")
    except ssl.SSLError as exc:
        reason = (exc.reason or str(exc)).upper()
        if "CERTIFICATE_REQUIRED" in reason:
            return (f"Kafka at {broker} requires a client certificate (mutual TLS) — set "
                    "JOURNEY_KAFKA_SSL_CERTFILE and JOURNEY_KAFKA_SSL_KEYFILE")
        if "UNKNOWN_CA" in reason or "BAD_CERTIFICATE" in reason or "CERTIFICATE_UNKNOWN" in reason:
            return (f"Kafka at {broker} refused this client's certificate — JOURNEY_KAFKA_SSL_CERTFILE must be "
                    "signed by a CA the brokers trust")
        if "WRONG_VERSION_NUMBER" in reason or "RECORD_LAYER_FAILURE" in reason:
            return (f"Kafka at {broker} does not speak TLS on that port — check JOURNEY_KAFKA_SECURITY_PROTOCOL "
                    "and the port in JOURNEY_KAFKA_BROKERS")
        return f"Kafka at {broker}: TLS failed ({exc.reason or exc}) — check the JOURNEY_KAFKA_SSL_* settings"
    except (ConnectionResetError, BrokenPipeError, EOFError):
        return (f"Kafka at {broker} closed the connection during the TLS handshake: it refused this client's "
                f"certificate or requires one (mutual TLS) — {fix_client}")
    except OSError:
        return None
    return None
