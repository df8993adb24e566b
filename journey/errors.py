"""Failures the CLI reports as one clear line (address + fix) instead of a traceback."""


class JourneyError(RuntimeError):
    """A user-facing failure; str(exc) is the whole message."""


def kafka_unreachable(brokers: str) -> JourneyError:
    return JourneyError(f"cannot reach Kafka at {brokers} — start a broker or set JOURNEY_KAFKA_BROKERS")
