"""The sink contract. Batching, retries and offset commits live in the caller (streams/)."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import NamedTuple, Protocol

from schemas import Transition


class IdentityRow(NamedTuple):
    """One link applied by the stream: `anonymous_id` is `customer_id` (DESIGN.md §1c)."""

    brand: str
    anonymous_id: str
    customer_id: str
    linked_at: datetime  # event time of the link
    link_event_id: str
    learned_at: datetime  # when the worker applied it


class SinkUnavailable(RuntimeError):
    """The store cannot be reached right now; the caller retries the same batch later."""


class Sink(Protocol):
    def setup(self) -> None:
        """Connect and check the target is migrated; raise SinkUnavailable with the fix."""

    def write(self, batch: Sequence[Transition], identities: Sequence[IdentityRow] = ()) -> None:
        """Store the batch (and the links learned with it) durably, or raise. Writing the same batch twice
        must change nothing."""

    def close(self) -> None: ...
