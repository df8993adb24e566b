"""The sink contract. Batching, retries and offset commits live in the caller (streams/)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Protocol

from schemas import Transition


class SinkUnavailable(RuntimeError):
    """The store cannot be reached right now; the caller retries the same batch later."""


class Sink(Protocol):
    def setup(self) -> None:
        """Connect and check the target is migrated; raise SinkUnavailable with the fix."""

    def write(self, batch: Sequence[Transition]) -> None:
        """Store the batch durably, or raise. Writing the same batch twice must change nothing."""

    def close(self) -> None: ...
