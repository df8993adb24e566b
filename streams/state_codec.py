"""Compact bytes for a customer's state in the store and its changelog.

Binary, little-endian, led by a format byte so the layout can change without a migration:

    format u8 (=4) | seq u32 | last_us i64 | last_id: text
    | entries-and-link u8: the number of entries (bits 0-2) | 0x80 if a link follows
    | each entry: kind u8: stage (bits 0-2) | event type (bits 3-4; 3: none, a legacy entry)
                           | influence (bits 5-6) | bit 7: triggered by the last event applied
                  back u8: seq − the entry's seq (0xFF: the entry's seq follows, u32)
                  at_us i64 | event_id: text          (left out when bit 7 says: last_us, last_id)
                  channel, referrer_id, campaign: text (left out for a legacy entry)
    | link (if flagged): link_us i64 | linked_to: text | link_id: text
    | recent: event_id digests, u64 each, oldest first (at most fivea.RECENT_IDS)
    text: u8 length + utf-8; 0xFF: null; 0xFE: a u16 length follows

About 50 bytes for a customer with one event (most customers), and under ~1.3 kB however many
events a customer sends (at most five entries of bounded labels, issue 12): memory per tracked
customer is dominated by this value (issue 6), which is why the common cases take one byte.

Format 3 (issue 13, before this layout) is still read. Formats 1 and 2 (before issue 13) kept
the stage, when it was entered and the last seq, not the journey: they are still read, as a
journey of one entry standing for the last published row with an unknown trigger
(`CustomerState.legacy`: late events for such a customer are applied forward only, as before).
Every state is written back in the current format the next time the customer changes.
Format 1 also kept every digest the customer ever sent, sorted: `RECENT_IDS` of them are kept.
"""

from __future__ import annotations

import struct

from fivea import RECENT_IDS, CustomerState, Stage
from fivea.merge import Entry, Trigger

FORMAT = 4
_FORMAT_BYTE = bytes([FORMAT])
_FORMAT_3_BYTE = bytes([3])
_LEGACY_FORMAT_BYTES = (bytes([1]), bytes([2]))
_HEAD = struct.Struct("<BIq")
_AT = struct.Struct("<q")
_U16 = struct.Struct("<H")
_U32 = struct.Struct("<I")
_LEGACY_HEAD = struct.Struct("<BBqIqH")
EVENT_TYPES = ("clickstream", "purchase", "share")
INFLUENCES = ("own", "other", "outer")
_EVENT_TYPE_CODE = {name: code for code, name in enumerate(EVENT_TYPES)}
_INFLUENCE_CODE = {name: code for code, name in enumerate(INFLUENCES)}
_NO_TRIGGER = 3 << 3  # event type 3: a legacy entry
_LAST_EVENT = 0x80
_LINKED = 0x80
_NULL_TEXT = b"\xff"
_LONG_TEXT = 0xFE
_FAR_BACK = 0xFF


def state_key(brand: str, customer_id: str) -> bytes:
    # Unit separator: brands and ids cannot contain control characters (schemas/events.py).
    return f"{brand}\x1f{customer_id}".encode()


def _text(value: str | None) -> bytes:
    if value is None:
        return _NULL_TEXT
    raw = value.encode()
    if len(raw) < _LONG_TEXT:
        return bytes([len(raw)]) + raw
    return bytes([_LONG_TEXT]) + _U16.pack(len(raw)) + raw


def _read(raw: bytes, at: int) -> tuple[str | None, int]:
    length = raw[at]
    at += 1
    if length == 0xFF:
        return None, at
    if length == _LONG_TEXT:
        (length,) = _U16.unpack_from(raw, at)
        at += 2
    return raw[at:at + length].decode(), at + length


def encode_state(state: CustomerState) -> bytes:
    seq, last_us, last_id = state.seq, state.last_us, state.last_id
    journey = state.journey
    parts = [_HEAD.pack(FORMAT, seq, last_us), _text(last_id),
             bytes([len(journey) | (_LINKED if state.linked_to else 0)])]
    for entry in journey:
        trigger = entry.trigger
        back = seq - entry.seq
        back_bytes = bytes([back]) if 0 <= back < _FAR_BACK else bytes([_FAR_BACK]) + _U32.pack(entry.seq)
        last = entry.at_us == last_us and entry.event_id == last_id
        if trigger is None:
            kind = int(entry.stage) | _NO_TRIGGER
        else:
            kind = int(entry.stage) | _EVENT_TYPE_CODE[trigger.event_type] << 3 | _INFLUENCE_CODE[trigger.influence] << 5
        parts.append(bytes([kind | _LAST_EVENT if last else kind]))
        parts.append(back_bytes)
        if not last:
            parts += (_AT.pack(entry.at_us), _text(entry.event_id))
        if trigger is not None:
            parts += (_text(trigger.channel), _text(trigger.referrer_id), _text(trigger.campaign))
    if state.linked_to:
        parts += (_AT.pack(state.link_us), _text(state.linked_to), _text(state.link_id))
    recent = state.recent
    parts.append(struct.pack(f"<{len(recent)}Q", *recent))
    return b"".join(parts)


def decode_state(raw: bytes | None) -> CustomerState | None:
    if raw is None:
        return None
    head = raw[:1]
    if head != _FORMAT_BYTE:
        if head == _FORMAT_3_BYTE:
            return _decode_format_3(raw)
        if head in _LEGACY_FORMAT_BYTES:
            return _decode_legacy(raw)
        raise ValueError(f"unknown customer-state format {head!r} (this worker reads formats 1 to {FORMAT})")
    _, seq, last_us = _HEAD.unpack_from(raw)
    last_id, at = _read(raw, _HEAD.size)
    flags = raw[at]
    at += 1
    journey = []
    for _ in range(flags & 0x07):
        kind, back = raw[at], raw[at + 1]
        at += 2
        if back == _FAR_BACK:
            (entry_seq,) = _U32.unpack_from(raw, at)
            at += 4
        else:
            entry_seq = seq - back
        if kind & _LAST_EVENT:
            at_us, event_id = last_us, last_id
        else:
            (at_us,) = _AT.unpack_from(raw, at)
            event_id, at = _read(raw, at + 8)
        stage = Stage(kind & 0x07)
        if kind & _NO_TRIGGER == _NO_TRIGGER:
            journey.append(Entry(at_us, event_id or "", stage, entry_seq, None))
            continue
        channel, at = _read(raw, at)
        referrer_id, at = _read(raw, at)
        campaign, at = _read(raw, at)
        trigger = Trigger(EVENT_TYPES[kind >> 3 & 0x03], channel, INFLUENCES[kind >> 5 & 0x03], referrer_id, campaign)
        journey.append(Entry(at_us, event_id or "", stage, entry_seq, trigger))
    linked_to, link_us, link_id = "", 0, ""
    if flags & _LINKED:
        (link_us,) = _AT.unpack_from(raw, at)
        linked_to, at = _read(raw, at + 8)
        link_id, at = _read(raw, at)
    recent = struct.unpack_from(f"<{(len(raw) - at) // 8}Q", raw, at)
    return CustomerState(tuple(journey), seq, last_us, last_id or "", recent, linked_to or "", link_us, link_id or "")


# -- earlier formats, read only -------------------------------------------------------------

_HEAD_3 = struct.Struct("<BIqH")
_ENTRY_3 = struct.Struct("<qIBBB")


def _read_3(raw: bytes, at: int, last_id: str = "") -> tuple[str | None, int]:
    (length,) = _U16.unpack_from(raw, at)
    at += 2
    if length == 0xFFFF:
        return None, at
    if length == 0xFFFE:
        return last_id, at
    return raw[at:at + length].decode(), at + length


def _decode_format_3(raw: bytes) -> CustomerState:
    """Format 3 (issue 13): the same fields with fixed-width numbers and u16 text lengths."""
    _, seq, last_us, id_length = _HEAD_3.unpack_from(raw)
    at = _HEAD_3.size + id_length
    last_id = raw[_HEAD_3.size:at].decode()
    count = raw[at]
    at += 1
    journey = []
    for _ in range(count):
        at_us, entry_seq, stage, event_type, influence = _ENTRY_3.unpack_from(raw, at)
        at += _ENTRY_3.size
        event_id, at = _read_3(raw, at, last_id)
        if event_type == 0xFF:
            journey.append(Entry(at_us, event_id or "", Stage(stage), entry_seq, None))
            continue
        channel, at = _read_3(raw, at)
        referrer_id, at = _read_3(raw, at)
        campaign, at = _read_3(raw, at)
        trigger = Trigger(EVENT_TYPES[event_type], channel, INFLUENCES[influence], referrer_id, campaign)
        journey.append(Entry(at_us, event_id or "", Stage(stage), entry_seq, trigger))
    linked_to, link_us, link_id = "", 0, ""
    if raw[at]:
        (link_us,) = _AT.unpack_from(raw, at + 1)
        linked_to, at = _read_3(raw, at + 9)
        link_id, at = _read_3(raw, at)
    else:
        at += 1
    recent = struct.unpack_from(f"<{(len(raw) - at) // 8}Q", raw, at)
    return CustomerState(tuple(journey), seq, last_us, last_id, recent, linked_to or "", link_us, link_id or "")


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
