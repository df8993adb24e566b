"""Failures the CLI reports as one clear line (address + fix) instead of a traceback."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any


class JourneyError(RuntimeError):
    """A user-facing failure; str(exc) is the whole message."""


def kafka_unreachable(brokers: str, security: Mapping[str, Any] | None = None) -> JourneyError:
    """The failure to connect, in words: a TLS problem named with its setting, else "cannot reach"."""
    if security:
        from journey.kafka_security import tls_problem

        problem = tls_problem(brokers.split(","), security)
        if problem:
            return JourneyError(problem)
    return JourneyError(f"cannot reach Kafka at {brokers} — start a broker or set JOURNEY_KAFKA_BROKERS")
