"""Compact bytes for a customer's state in the changelog-backed table."""

from __future__ import annotations

import orjson

from fivea import CustomerState, Stage


def state_key(brand: str, customer_id: str) -> bytes:
    # Unit separator: brands and ids cannot contain control characters (schemas/events.py).
    return f"{brand}\x1f{customer_id}".encode()


def encode_state(state: CustomerState) -> bytes:
    return orjson.dumps(
        [int(state.stage), state.entered_us, state.seq, state.last_us, state.last_id, sorted(state.seen)]
    )


def decode_state(raw: bytes | None) -> CustomerState | None:
    if raw is None:
        return None
    stage, entered_us, seq, last_us, last_id, seen = orjson.loads(raw)
    return CustomerState(Stage(stage), entered_us, seq, last_us, last_id, frozenset(seen))
