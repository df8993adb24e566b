"""Compact bytes for a customer's state in the store and its changelog.

Binary, little-endian, led by a format byte so the layout can change without a migration:

    format u8 (=3) | seq u32 | last_us i64 | id length u16 | last_id utf-8 | entries u8
    | each entry: at_us i64 | seq u32 | stage u8 | event type u8 | influence u8
                  | event_id, channel, referrer_id, campaign: u16 length (0xFFFF: null) + utf-8
                    (event_id 0xFFFE: the same as last_id, the usual case: not repeated)
    | recent: event_id digests, u64 each, oldest first (at most fivea.RECENT_IDS)

About 70 bytes for a customer with one event, and under ~1.3 kB however many events a customer
sends (at most five entries of bounded labels, issue 12): memory per tracked customer is
dominated by this value (issue 6).

Formats 1 and 2 (before issue 13) kept the stage, when it was entered and the last seq, not the
journey: they are still read, as a journey of one entry standing for the last published row
with an unknown trigger (`CustomerState.legacy`: late events for such a customer are applied
forward only, as before), and written back as format 3 the next time the customer changes.
Format 1 also kept every digest the customer ever sent, sorted: `RECENT_IDS` of them are kept.
"""

from __future__ import annotations

import struct

from fivea import RECENT_IDS, CustomerState, Stage
from fivea.merge import Entry, Trigger

FORMAT = 3
_FORMAT_BYTE = bytes([FORMAT])
_LEGACY_FORMAT_BYTES = (bytes([1]), bytes([2]))
_HEAD = struct.Struct("<BIqH")
_ENTRY = struct.Struct("<qIBBB")
_LEGACY_HEAD = struct.Struct("<BBqIqH")
_LENGTH = struct.Struct("<H")
_NULL = 0xFFFF
_LAST_ID = b"\xfe\xff"  # u16 0xFFFE: the entry's event id is last_id
EVENT_TYPES = ("clickstream", "purchase", "share")
INFLUENCES = ("own", "other", "outer")
_EVENT_TYPE_CODE = {name: code for code, name in enumerate(EVENT_TYPES)}
_INFLUENCE_CODE = {name: code for code, name in enumerate(INFLUENCES)}


def state_key(brand: str, customer_id: str) -> bytes:
    # Unit separator: brands and ids cannot contain control characters (schemas/events.py).
    return f"{brand}\x1f{customer_id}".encode()


def _text(value: str | None) -> bytes:
    if value is None:
        return b"\xff\xff"
    raw = value.encode()
    return _LENGTH.pack(len(raw)) + raw


def encode_state(state: CustomerState) -> bytes:
    last_id = state.last_id.encode()
    parts = [_HEAD.pack(FORMAT, state.seq, state.last_us, len(last_id)), last_id, bytes([len(state.journey)])]
    for entry in state.journey:
        trigger = entry.trigger
        event_id = _LAST_ID if entry.event_id == state.last_id else _text(entry.event_id)
        if trigger is None:  # a legacy entry: written as it was read
            parts.append(_ENTRY.pack(entry.at_us, entry.seq, int(entry.stage), 0xFF, 0xFF))
            parts.append(event_id)
            continue
        parts.append(_ENTRY.pack(entry.at_us, entry.seq, int(entry.stage), _EVENT_TYPE_CODE[trigger.event_type],
                                 _INFLUENCE_CODE[trigger.influence]))
        parts += (event_id, _text(trigger.channel), _text(trigger.referrer_id), _text(trigger.campaign))
    recent = state.recent
    parts.append(struct.pack(f"<{len(recent)}Q", *recent))
    return b"".join(parts)


def _read_text(raw: bytes, at: int, last_id: str = "") -> tuple[str | None, int]:
    (length,) = _LENGTH.unpack_from(raw, at)
    at += 2
    if length == _NULL:
        return None, at
    if length == 0xFFFE:
        return last_id, at
    return raw[at:at + length].decode(), at + length


def decode_state(raw: bytes | None) -> CustomerState | None:
    if raw is None:
        return None
    head = raw[:1]
    if head != _FORMAT_BYTE:
        if head in _LEGACY_FORMAT_BYTES:
            return _decode_legacy(raw)
        raise ValueError(f"unknown customer-state format {head!r} (this worker reads formats 1 to {FORMAT})")
    _, seq, last_us, id_length = _HEAD.unpack_from(raw)
    at = _HEAD.size + id_length
    last_id = raw[_HEAD.size:at].decode()
    count = raw[at]
    at += 1
    journey = []
    for _ in range(count):
        at_us, entry_seq, stage, event_type, influence = _ENTRY.unpack_from(raw, at)
        at += _ENTRY.size
        event_id, at = _read_text(raw, at, last_id)
        if event_type == 0xFF:
            journey.append(Entry(at_us, event_id or "", Stage(stage), entry_seq, None))
            continue
        channel, at = _read_text(raw, at)
        referrer_id, at = _read_text(raw, at)
        campaign, at = _read_text(raw, at)
        trigger = Trigger(EVENT_TYPES[event_type], channel, INFLUENCES[influence], referrer_id, campaign)
        journey.append(Entry(at_us, event_id or "", Stage(stage), entry_seq, trigger))
    recent = struct.unpack_from(f"<{(len(raw) - at) // 8}Q", raw, at)
    return CustomerState(tuple(journey), seq, last_us, last_id, recent)


def _decode_legacy(raw: bytes) -> CustomerState:
    """Formats 1 and 2: the stage, its entry time and the last seq stand for the last published row."""
    _, stage, entered_us, seq, last_us, id_length = _LEGACY_HEAD.unpack_from(raw)
    start = _LEGACY_HEAD.size + id_length
    last_id = raw[_LEGACY_HEAD.size:start].decode()
    recent = struct.unpack_from(f"<{(len(raw) - start) // 8}Q", raw, start)
    if len(recent) > RECENT_IDS:  # format 1 of a customer with a long history
        recent = recent[-RECENT_IDS:]
    journey = (Entry(entered_us, "", Stage(stage), seq, None),) if stage else ()
    return CustomerState(journey, seq, last_us, last_id, recent)
