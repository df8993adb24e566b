"""A stage transition: the record the core emits, the stream publishes and the sink stores."""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import AfterValidator, AwareDatetime, BaseModel, ConfigDict, Field

from schemas.events import _to_utc

Stage = Literal["none", "aware", "appeal", "ask", "act", "advocate"]
STAGES: tuple[Stage, ...] = ("none", "aware", "appeal", "ask", "act", "advocate")
Kind = Literal["forward", "skip"]
Influence = Literal["own", "other", "outer"]
EventType = Literal["clickstream", "purchase", "share"]


class Transition(BaseModel):
    """One move of one customer along the 5A path; idempotent on (brand, customer_id, seq).

    A record with `retracted: true` withdraws the row published earlier with the same
    `(brand, customer_id, seq)` (DESIGN.md §1b): a late event or a merge of journeys changed the
    customer's path. It repeats that row's fields, so a consumer may subtract it wherever it
    counted the row. A row only ever goes from live to retracted, never back.
    """

    model_config = ConfigDict(frozen=True, extra="forbid")

    brand: str
    customer_id: str
    seq: Annotated[int, Field(ge=1, description="the row's number within the customer's journey: 1, 2, ... never reused")]
    from_stage: Stage
    to_stage: Stage
    kind: Kind
    occurred_at: Annotated[AwareDatetime, AfterValidator(_to_utc)] = Field(
        description="the triggering event's time (UTC)"
    )
    trigger_event_id: str
    trigger_event_type: EventType
    channel: str | None = None
    influence: Influence
    referrer_id: str | None = None
    dwell_ms: Annotated[int, Field(ge=0)] | None = Field(
        default=None, description="time since the customer entered from_stage; null for the first"
    )
    campaign: str | None = Field(default=None, description="the triggering event's campaign; null when none")
    retracted: bool = Field(
        default=False, description="true: withdraws the row published earlier with the same (brand, customer_id, seq)"
    )

    @classmethod
    def trusted(cls, **values: object) -> "Transition":
        """Build from values the 5A core has already made valid, skipping validation.

        `model_construct` without its per-field bookkeeping (about 3x cheaper, and the core
        builds one per transition): every field must be given.
        """
        transition = cls.__new__(cls)
        object.__setattr__(transition, "__dict__", values)
        object.__setattr__(transition, "__pydantic_fields_set__", _ALL_FIELDS)
        object.__setattr__(transition, "__pydantic_extra__", None)
        object.__setattr__(transition, "__pydantic_private__", None)
        return transition

    @property
    def key(self) -> tuple[str, str, int]:
        return (self.brand, self.customer_id, self.seq)


_ALL_FIELDS = frozenset(Transition.model_fields)


def transition_fields() -> tuple[str, ...]:
    return tuple(Transition.model_fields)

