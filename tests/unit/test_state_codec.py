"""Customer state bytes (the changelog table's values) and the per-batch PathProcessor."""

from __future__ import annotations

import pytest

import struct

from hypothesis import given, settings
from hypothesis import strategies as st

from fivea import RECENT_IDS, CustomerState, Stage, advance, event_id_digest
from fivea.merge import Entry, Trigger
from streams.path_processor import PathProcessor
from streams.state_codec import FORMAT, decode_state, encode_state, state_key
from tests.unit.builders import RULES, click, minute, moves, purchase, run, share


def state_after(*events) -> CustomerState:
    state = None
    for event in events:
        state = advance(state, event, RULES).state
    return state


@pytest.mark.parametrize(
    "state",
    [
        CustomerState(),
        state_after(click("c", "page_view", at=minute(1))),
        state_after(click("c", "page_view", at=minute(9)), purchase("c", at=minute(3)), share("c", at=minute(4))),
        CustomerState((Entry(-5, "Zoë-李", Stage.AWARE, 1, Trigger("share", None, "other", "r-ü", None)),
                       Entry(2**62, "", Stage.ASK, 2**32 - 1, Trigger("purchase", "ç" * 300, "outer", None, "c"))),
                      seq=2**32 - 1, last_us=2**62, last_id="Zoë-李", recent=(2**64 - 1, 0)),
        CustomerState((Entry(7, "", Stage.APPEAL, 2, None),), seq=2, last_us=9, last_id="x"),
        CustomerState((), seq=3, last_us=9, last_id="x", recent=(5,), linked_to="cust-ü", link_us=-3, link_id="i-1"),
    ],
    ids=["fresh", "aware", "after late events", "extremes", "legacy entry", "a linked anonymous person"],
)
def test_state_round_trip(state):
    raw = encode_state(state)
    assert isinstance(raw, bytes)
    assert decode_state(raw) == state
    assert decode_state(raw).stage is state.stage


def test_state_round_trip_with_many_ids():
    events = [click("c", "page_view", at=minute(i), id=f"id-{i}") for i in range(200)]
    state = state_after(*events)
    assert decode_state(encode_state(state)) == state
    remembered = decode_state(encode_state(state)).recent
    assert event_id_digest("id-199") in remembered and event_id_digest("id-7") not in remembered
    assert len(remembered) == RECENT_IDS


@settings(max_examples=30, deadline=None)
@given(st.integers(1, 2_000))
def test_a_state_is_bounded_whatever_the_history(events):
    state = state_after(*(click("c", "page_view", at=minute(i % 50), id=f"event-{i:08d}") for i in range(events)))
    assert len(state.recent) == min(events, RECENT_IDS)
    assert len(encode_state(state)) <= 20 + len("event-00000000") + 8 * RECENT_IDS + 5 * (15 + 8 + len("event-00000000"))


def test_a_state_of_the_previous_format_is_read():
    """Format 1 kept every digest, sorted: read with RECENT_IDS of them, written back in the current format.

    The stage, its entry time and the last seq stand for the last published row (a legacy entry)."""
    digests = sorted(event_id_digest(f"id-{i}") for i in range(100))
    last_id = b"id-99"
    raw = struct.pack("<BBqIqH", 1, int(Stage.APPEAL), 7, 2, 9, len(last_id)) + last_id + struct.pack("<100Q", *digests)
    state = decode_state(raw)
    assert (state.stage, state.entered_us, state.seq, state.last_us, state.last_id) == (Stage.APPEAL, 7, 2, 9, "id-99")
    assert state.recent == tuple(digests[-RECENT_IDS:])
    assert state.journey == (Entry(7, "", Stage.APPEAL, 2, None),) and state.legacy
    assert encode_state(state)[0] == FORMAT
    assert decode_state(encode_state(state)) == state


def test_no_bytes_means_no_state():
    assert decode_state(None) is None


def test_a_one_event_customer_is_small():
    state = state_after(click("c0001234", "page_view", at=minute(1), id="e000009284-0e6bafb8"))
    # head 13 + last id 1 + 19 + entries-and-link 1 + entry: kind 1, seq back 1, three null labels 3 + one digest 8
    assert len(encode_state(state)) == 13 + 1 + 19 + 1 + 1 + 1 + 3 + 8  # triggered by the last event: no time, no id


def test_a_state_of_format_3_is_read():
    """Written by the previous release (issue 13): fixed-width numbers, u16 text lengths."""
    three_events = bytes.fromhex(
        "0304000000000fb73d98120600090065762d3030303030360300e541289812060002000000010100090065762d30303030"
        "3037ffffffffffff00e541289812060003000000040100090065762d303030303037ffffffffffff006cd52b981206000400"
        "0000050200090065762d303030303038ffffffffffff000f61aee4a15c82b954779b50f14781db08d6e4bb3bc6aa90")
    linked = bytes.fromhex("030300000009000000000000000100780001fdffffffffffffff0700637573742dc3bc0300692d310500000000000000")
    purchased = Trigger("purchase", None, "own", None, None)
    assert decode_state(three_events) == CustomerState(
        (Entry(1709294580000000, "ev-000007", Stage.AWARE, 2, purchased),
         Entry(1709294580000000, "ev-000007", Stage.ACT, 3, purchased),
         Entry(1709294640000000, "ev-000008", Stage.ADVOCATE, 4, Trigger("share", None, "own", None, None))),
        seq=4, last_us=1709294940000000, last_id="ev-000006",
        recent=(13367348494385176847, 15817002468066948948, 10424362247360140808))
    assert decode_state(linked) == CustomerState((), seq=3, last_us=9, last_id="x", recent=(5,), linked_to="cust-ü",
                                                 link_us=-3, link_id="i-1")


_TEXT = st.text(st.characters(codec="utf-8", exclude_categories=("Cs",)), max_size=300)
_ENTRY = st.builds(
    Entry, st.integers(-2**63, 2**63 - 1), _TEXT, st.sampled_from(list(Stage)[1:]), st.integers(0, 2**32 - 1),
    st.none() | st.builds(Trigger, st.sampled_from(["clickstream", "purchase", "share"]), st.none() | _TEXT,
                          st.sampled_from(["own", "other", "outer"]), st.none() | _TEXT, st.none() | _TEXT))


@settings(max_examples=300, deadline=None)
@given(st.lists(_ENTRY, max_size=5), st.integers(0, 2**32 - 1), st.integers(-2**63, 2**63 - 1), _TEXT,
       st.lists(st.integers(0, 2**64 - 1), max_size=RECENT_IDS), st.booleans(), st.booleans())
def test_any_state_round_trips(journey, seq, last_us, last_id, recent, last_event, linked):
    if last_event and journey:  # the common case: the last entry was triggered by the last event applied
        journey[-1] = journey[-1]._replace(at_us=last_us, event_id=last_id)
    link = ("p-1", -7, "i-9") if linked else ("", 0, "")
    state = CustomerState(tuple(journey), seq, last_us, last_id, tuple(recent), *link)
    assert decode_state(encode_state(state)) == state


def test_an_unknown_format_is_refused_by_name():
    raw = b"\x07" + encode_state(state_after(click("c", "page_view", at=minute(1))))[1:]
    with pytest.raises(ValueError, match="unknown customer-state format"):
        decode_state(raw)


def test_state_keys_do_not_collide():
    assert state_key("ab", "c") != state_key("a", "bc")
    assert state_key("default", "c1") == state_key("default", "c1")
    assert state_key("acme", "c1") != state_key("default", "c1")


# --- PathProcessor -----------------------------------------------------------------------------

KEY = state_key("default", "c1")


def test_one_changed_state_per_customer_per_batch():
    batch = [
        click("c1", "page_view", at=minute(0)),
        click("c2", "page_view", at=minute(0)),
        click("c1", "product_view", at=minute(1)),
        purchase("c1", at=minute(2)),
        share("c2", at=minute(3)),
    ]
    outcome = PathProcessor(RULES).apply(batch, {})
    assert set(outcome.changed) == {KEY, state_key("default", "c2")}
    c1 = [e for e in batch if e.customer_id == "c1"]
    assert decode_state(outcome.changed[KEY]) == state_after(*c1)
    assert [t.customer_id for t in outcome.transitions] == ["c1", "c2", "c1", "c1", "c2"]
    assert (outcome.duplicates, outcome.late) == (0, 0)


def test_same_customer_in_two_brands_is_two_states():
    batch = [click("c1", "page_view", brand="a"), purchase("c1", brand="b")]
    outcome = PathProcessor(RULES).apply(batch, {})
    assert set(outcome.changed) == {state_key("a", "c1"), state_key("b", "c1")}
    assert [(t.brand, t.seq, t.to_stage) for t in outcome.transitions] == [
        ("a", 1, "aware"),
        ("b", 1, "aware"),
        ("b", 2, "act"),
    ]


def test_continues_from_the_stored_state():
    first = click("c1", "page_view", at=minute(0), id="e1")
    stored = {KEY: encode_state(state_after(first))}
    outcome = PathProcessor(RULES).apply([purchase("c1", at=minute(5), id="e2")], stored)
    assert [(t.seq, t.from_stage, t.to_stage, t.dwell_ms) for t in outcome.transitions] == [
        (2, "aware", "act", 5 * 60_000)
    ]


def test_duplicates_are_counted_and_not_marked_changed():
    first = click("c1", "page_view", at=minute(0), id="e1")
    stored = {KEY: encode_state(state_after(first))}
    redelivered = [first, purchase("c1", at=minute(1), id="e1")]  # exact and conflicting copies
    outcome = PathProcessor(RULES).apply(redelivered, stored)
    assert outcome.changed == {}
    assert outcome.transitions == []
    assert outcome.duplicates == 2


def test_duplicate_after_a_change_in_the_same_batch_keeps_one_write():
    batch = [click("c1", "page_view", id="e1"), click("c1", "page_view", id="e1")]
    outcome = PathProcessor(RULES).apply(batch, {})
    assert list(outcome.changed) == [KEY]
    assert outcome.duplicates == 1


def test_non_moving_event_still_changes_the_state():
    # No transition, but the event id must be remembered (and the late watermark moves).
    stored = {KEY: encode_state(state_after(click("c1", "search", at=minute(0), id="e1")))}
    outcome = PathProcessor(RULES).apply([click("c1", "page_view", at=minute(1), id="e2")], stored)
    assert outcome.transitions == []
    assert event_id_digest("e2") in decode_state(outcome.changed[KEY]).recent


def test_late_events_are_counted():
    batch = [click("c1", "page_view", at=minute(5)), click("c1", "search", at=minute(1))]
    assert PathProcessor(RULES).apply(batch, {}).late == 1


def test_the_caller_writes_the_states():
    stored: dict[bytes, bytes] = {}
    PathProcessor(RULES).apply([click("c1", "page_view")], stored)
    assert stored == {}  # the processor returns `changed`; writing is the agent's job


def test_batch_boundaries_do_not_change_the_output():
    events = [
        click("c1", "page_view", at=minute(0), id="a"),
        click("c2", "product_view", at=minute(1), id="b"),
        click("c1", "compare", at=minute(2), id="c"),
        click("c1", "page_view", at=minute(2), id="a"),  # redelivered
        purchase("c2", at=minute(3), id="d"),
        share("c1", "review", rating=5, at=minute(4), id="e"),
    ]
    processor = PathProcessor(RULES)
    whole = processor.apply(events, {})
    stored: dict[bytes, bytes] = {}
    pieces = []
    for batch in (events[:2], events[2:3], events[3:]):
        outcome = processor.apply(batch, stored)
        stored.update(outcome.changed)
        pieces.extend(outcome.transitions)
    assert pieces == whole.transitions
    assert stored == whole.changed
    assert moves(t for t in pieces if t.customer_id == "c1") == moves(run(e for e in events if e.customer_id == "c1"))
