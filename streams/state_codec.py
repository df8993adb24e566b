"""Compact bytes for a customer's state in the store and its changelog.

Binary, little-endian, led by a format byte so the layout can change without a migration:

    format u8 (=2) | stage u8 | entered_us i64 | seq u32 | last_us i64 | id length u16 | last_id utf-8
    | recent: event_id digests, u64 each, oldest first (at most fivea.RECENT_IDS)

About 45 bytes for a customer with one event (JSON took over 100), and never more than
~550 bytes however many events a customer sends (issue 12): memory per tracked customer is
dominated by this value (issue 6).

Format 1 (before issue 12) kept every digest the customer ever sent, sorted, so their
recency is lost: it is still read, keeping `RECENT_IDS` of them, and written back as format 2
the next time the customer changes.
"""

from __future__ import annotations

import struct

from fivea import RECENT_IDS, CustomerState, Stage

FORMAT = 2
_FORMAT_BYTE = bytes([FORMAT])
_PREVIOUS_FORMAT_BYTE = bytes([1])
_HEAD = struct.Struct("<BBqIqH")


def state_key(brand: str, customer_id: str) -> bytes:
    # Unit separator: brands and ids cannot contain control characters (schemas/events.py).
    return f"{brand}\x1f{customer_id}".encode()


def encode_state(state: CustomerState) -> bytes:
    last_id = state.last_id.encode()
    recent = state.recent
    return (
        _HEAD.pack(FORMAT, int(state.stage), state.entered_us, state.seq, state.last_us, len(last_id))
        + last_id
        + struct.pack(f"<{len(recent)}Q", *recent)
    )


def decode_state(raw: bytes | None) -> CustomerState | None:
    if raw is None:
        return None
    head = raw[:1]
    if head != _FORMAT_BYTE and head != _PREVIOUS_FORMAT_BYTE:
        raise ValueError(f"unknown customer-state format {head!r} (this worker reads formats 1 and {FORMAT})")
    _, stage, entered_us, seq, last_us, id_length = _HEAD.unpack_from(raw)
    start = _HEAD.size + id_length
    last_id = raw[_HEAD.size:start].decode()
    recent = struct.unpack_from(f"<{(len(raw) - start) // 8}Q", raw, start)
    if len(recent) > RECENT_IDS:  # format 1 of a customer with a long history
        recent = recent[-RECENT_IDS:]
    return CustomerState(Stage(stage), entered_us, seq, last_us, last_id, recent)
