"""The 5A domain core: rules as data, the per-customer state machine and the merge of journeys. No I/O."""

from fivea.path import (
    RECENT_IDS,
    CustomerState,
    Step,
    advance,
    event_id_digest,
    event_time_us,
    order_key,
    reconcile,
)
from fivea.replay import customer_key, replay
from fivea.rules import DEFAULT_RULES, Rules, RulesError
from fivea.stages import PATH, Stage

__all__ = [
    "DEFAULT_RULES",
    "PATH",
    "CustomerState",
    "Rules",
    "RulesError",
    "Stage",
    "Step",
    "advance",
    "customer_key",
    "event_id_digest",
    "event_time_us",
    "order_key",
    "reconcile",
    "replay",
]
