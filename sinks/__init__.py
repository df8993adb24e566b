"""Where transitions are stored. A sink is small: `setup()`, `write(batch)`, `close()`."""

from sinks.contract import Sink, SinkUnavailable

__all__ = ["Sink", "SinkUnavailable"]
