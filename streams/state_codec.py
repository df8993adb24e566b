"""Compact bytes for a customer's state in the store and its changelog.

Binary, little-endian, led by a format byte so the layout can change without a migration:

    format u8 (=1) | stage u8 | entered_us i64 | seq u32 | last_us i64 | id length u16 | last_id utf-8
    | seen: event_id digests, u64 each, sorted

About 45 bytes for a customer with one event (JSON took over 100): memory per tracked
customer is dominated by this value (issue 6).
"""

from __future__ import annotations

import struct

from fivea import CustomerState, Stage

FORMAT = 1
_FORMAT_BYTE = bytes([FORMAT])
_HEAD = struct.Struct("<BBqIqH")


def state_key(brand: str, customer_id: str) -> bytes:
    # Unit separator: brands and ids cannot contain control characters (schemas/events.py).
    return f"{brand}\x1f{customer_id}".encode()


def encode_state(state: CustomerState) -> bytes:
    last_id = state.last_id.encode()
    seen = sorted(state.seen)
    return (
        _HEAD.pack(FORMAT, int(state.stage), state.entered_us, state.seq, state.last_us, len(last_id))
        + last_id
        + struct.pack(f"<{len(seen)}Q", *seen)
    )


def decode_state(raw: bytes | None) -> CustomerState | None:
    if raw is None:
        return None
    if raw[:1] != _FORMAT_BYTE:
        raise ValueError(f"unknown customer-state format {raw[:1]!r} (this worker reads format {FORMAT})")
    _, stage, entered_us, seq, last_us, id_length = _HEAD.unpack_from(raw)
    start = _HEAD.size + id_length
    last_id = raw[_HEAD.size:start].decode()
    seen = struct.unpack_from(f"<{(len(raw) - start) // 8}Q", raw, start)
    return CustomerState(Stage(stage), entered_us, seq, last_us, last_id, frozenset(seen))
