"""The per-customer 5A step, DESIGN.md §1 rules 2-5: events in (arrival order), transitions out."""

from __future__ import annotations

from datetime import datetime, timezone

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from tests.unit.builders import live, RULES, T0, click, minute, moves, purchase, run, second, share
from fivea import RECENT_IDS, CustomerState, Stage, advance
from schemas import Transition

NONE_AWARE = ("none", "aware", "forward")


# --- rule 2: everyone starts aware ---------------------------------------------------------


@pytest.mark.parametrize(
    "first",
    [
        click("c", "page_view"),
        click("c", "some_action_nobody_listed"),
        purchase("c", "refunded"),  # no signal at all
        share("c", "review", rating=None),
    ],
    ids=["page_view", "unknown_action", "refunded_purchase", "unrated_review"],
)
def test_first_event_always_gives_none_to_aware(first):
    transitions = run([first])
    assert moves(transitions)[0] == NONE_AWARE
    assert transitions[0].seq == 1
    assert transitions[0].dwell_ms is None


def test_first_event_with_no_signal_gives_only_none_to_aware():
    assert moves(run([purchase("c", "refunded")])) == [NONE_AWARE]


# --- rule 3: one transition per upward jump, never down ------------------------------------

PATHS = {
    "first event is aware": (
        [click("c", "page_view", at=minute(0))],
        [NONE_AWARE],
    ),
    "first event jumps: none->aware then the jump": (
        [click("c", "product_view", at=minute(0))],
        [NONE_AWARE, ("aware", "appeal", "forward")],
    ),
    "first event is a purchase: aware skips to act": (
        [purchase("c", at=minute(0))],
        [NONE_AWARE, ("aware", "act", "skip")],
    ),
    "straight line through all five": (
        [
            click("c", "page_view", at=minute(0)),
            click("c", "product_view", at=minute(1)),
            click("c", "search", at=minute(2)),
            purchase("c", at=minute(3)),
            share("c", "recommend", at=minute(4)),
        ],
        [
            NONE_AWARE,
            ("aware", "appeal", "forward"),
            ("appeal", "ask", "forward"),
            ("ask", "act", "forward"),
            ("act", "advocate", "forward"),
        ],
    ),
    "impulse buy: aware -> act is one skip": (
        [click("c", "ad_click", at=minute(0)), purchase("c", at=minute(1))],
        [NONE_AWARE, ("aware", "act", "skip")],
    ),
    "trumpet: advocate without buying": (
        [click("c", "landing", at=minute(0)), share("c", "invite", at=minute(1))],
        [NONE_AWARE, ("aware", "advocate", "skip")],
    ),
    "equal signal gives nothing": (
        [
            click("c", "product_view", at=minute(0)),
            click("c", "like", at=minute(1)),
            click("c", "wishlist_add", at=minute(2)),
        ],
        [NONE_AWARE, ("aware", "appeal", "forward")],
    ),
    "lower signals give nothing": (
        [
            purchase("c", at=minute(0)),
            click("c", "search", at=minute(1)),
            click("c", "page_view", at=minute(2)),
            share("c", "review", rating=2, at=minute(3)),
        ],
        [NONE_AWARE, ("aware", "act", "skip")],
    ),
    "refunded purchase gives no signal": (
        [click("c", "page_view", at=minute(0)), purchase("c", "refunded", at=minute(1))],
        [NONE_AWARE],
    ),
    "refund after a purchase does not go down": (
        [purchase("c", at=minute(0)), purchase("c", "refunded", at=minute(1))],
        [NONE_AWARE, ("aware", "act", "skip")],
    ),
    "advocate is final": (
        [
            share("c", "share", at=minute(0)),
            purchase("c", at=minute(1)),
            click("c", "search", at=minute(2)),
            share("c", "review", rating=5, at=minute(3)),
        ],
        [NONE_AWARE, ("aware", "advocate", "skip")],
    ),
    "ask then appeal then act": (
        [
            click("c", "compare", at=minute(0)),
            click("c", "follow", at=minute(1)),
            purchase("c", at=minute(2)),
        ],
        [NONE_AWARE, ("aware", "ask", "skip"), ("ask", "act", "forward")],
    ),
    "low review is ask": (
        [click("c", "page_view", at=minute(0)), share("c", "review", rating=3, at=minute(1))],
        [NONE_AWARE, ("aware", "ask", "skip")],
    ),
    "unrated review is ask": (
        [click("c", "page_view", at=minute(0)), share("c", "review", at=minute(1))],
        [NONE_AWARE, ("aware", "ask", "skip")],
    ),
    "review rated 4 is advocacy": (
        [purchase("c", at=minute(0)), share("c", "review", rating=4, at=minute(1))],
        [NONE_AWARE, ("aware", "act", "skip"), ("act", "advocate", "forward")],
    ),
}


@pytest.mark.parametrize(("events", "expected"), PATHS.values(), ids=PATHS.keys())
def test_path(events, expected):
    assert moves(run(events)) == expected


@pytest.mark.parametrize(("events", "_"), PATHS.values(), ids=PATHS.keys())
def test_stages_only_go_up_and_seq_counts_from_one(events, _):
    transitions = run(events)
    order = [Stage.parse(t.from_stage) for t in transitions] + [Stage.parse(transitions[-1].to_stage)]
    assert order == sorted(set(order))
    assert [t.seq for t in transitions] == list(range(1, len(transitions) + 1))
    for t in transitions:
        jump = Stage.parse(t.to_stage) - Stage.parse(t.from_stage)
        assert t.kind == ("forward" if jump == 1 else "skip")


@pytest.mark.parametrize(("events", "_"), PATHS.values(), ids=PATHS.keys())
def test_emitted_transitions_pass_their_own_schema(events, _):
    # The core builds transitions with model_construct (no validation): prove they are valid.
    for t in run(events):
        assert Transition.model_validate(t.model_dump()) == t


def test_first_event_jump_shares_trigger_fields_with_none_to_aware():
    event = click("c", "add_to_cart", at=minute(7), channel="social", referrer="friend-1", id="e-cart")
    aware, jump = run([event])
    trigger = ("occurred_at", "trigger_event_id", "trigger_event_type", "channel", "influence", "referrer_id")
    assert {f: getattr(aware, f) for f in trigger} == {f: getattr(jump, f) for f in trigger}
    assert (aware.trigger_event_id, aware.occurred_at, aware.influence) == ("e-cart", minute(7), "other")
    assert (aware.seq, aware.dwell_ms, jump.seq, jump.dwell_ms) == (1, None, 2, 0)


@pytest.mark.parametrize(
    ("event", "trigger_type", "referrer_id"),
    [
        (click("c", "search", brand="acme", channel="email", referrer="r-9", id="x1"), "clickstream", "r-9"),
        (purchase("c", brand="acme", channel="email", id="x1"), "purchase", None),
        (share("c", "share", brand="acme", channel="email", id="x1"), "share", None),
    ],
    ids=["clickstream", "purchase", "share"],
)
def test_transition_carries_the_trigger(event, trigger_type, referrer_id):
    last = run([event])[-1]
    assert last.brand == "acme"
    assert last.customer_id == "c"
    assert last.trigger_event_id == "x1"
    assert last.trigger_event_type == trigger_type
    assert last.channel == "email"
    assert last.referrer_id == referrer_id
    assert last.occurred_at == T0
    assert last.influence == ("other" if referrer_id else "outer")


# --- duplicates ------------------------------------------------------------------------------


def test_duplicate_event_id_for_same_customer_is_ignored_even_with_another_payload():
    first = click("c", "page_view", at=minute(0), id="dup")
    again = purchase("c", at=minute(1), id="dup")  # same id, different payload: first wins
    state = advance(None, first, RULES).state
    step = advance(state, again, RULES)
    assert step.duplicate
    assert step.transitions == []
    assert step.state is state
    assert not step.late


def test_exact_redelivery_is_a_duplicate():
    event = click("c", "product_view", at=minute(0), id="e1")
    state = advance(None, event, RULES).state
    step = advance(state, event, RULES)
    assert (step.duplicate, step.transitions, step.state) == (True, [], state)


def test_same_event_id_for_another_customer_is_not_a_duplicate():
    alice = advance(None, click("alice", "page_view", id="shared-id"), RULES)
    bob = advance(None, purchase("bob", id="shared-id"), RULES)
    assert not alice.duplicate and not bob.duplicate
    assert moves(bob.transitions) == [NONE_AWARE, ("aware", "act", "skip")]
    assert bob.transitions[0].customer_id == "bob"


def test_duplicate_after_other_events_still_ignored():
    events = [
        click("c", "page_view", at=minute(0), id="a"),
        click("c", "search", at=minute(1), id="b"),
        purchase("c", at=minute(2), id="a"),
    ]
    assert moves(run(events)) == [NONE_AWARE, ("aware", "ask", "skip")]


# --- dwell time --------------------------------------------------------------------------------


def test_dwell_is_time_since_entering_from_stage():
    transitions = run(
        [
            click("c", "page_view", at=minute(0)),
            click("c", "page_view", at=minute(2)),  # no move: aware was entered at 0
            click("c", "product_view", at=minute(5)),
            click("c", "like", at=minute(6)),  # no move: appeal was entered at 5
            click("c", "search", at=minute(12)),
            purchase("c", at=second(12 * 60 + 1.5)),
        ]
    )
    assert [(t.to_stage, t.dwell_ms) for t in transitions] == [
        ("aware", None),
        ("appeal", 5 * 60_000),
        ("ask", 7 * 60_000),
        ("act", 1_500),
    ]


def test_dwell_counts_whole_milliseconds():
    at = datetime(2024, 3, 1, 12, 0, 0, 1999, tzinfo=timezone.utc)  # +1.999 ms
    transitions = run([click("c", "page_view", at=T0), click("c", "product_view", at=at)])
    assert transitions[-1].dwell_ms == 1


# --- event-time order and late events ------------------------------------------------------------


def replay_of(events):
    from fivea import replay

    return list(replay(events, RULES))



def test_in_order_events_are_not_late():
    state = None
    for event in [click("c", "page_view", at=minute(0)), click("c", "search", at=minute(1))]:
        step = advance(state, event, RULES)
        state = step.state
        assert not step.late and not step.duplicate and not step.corrected


def test_a_late_event_is_merged_into_the_journey():
    """A product view made before the first contact seen: it becomes the first contact (DESIGN.md §1b)."""
    state = advance(None, click("c", "page_view", at=minute(10), id="k10"), RULES).state
    step = advance(state, click("c", "product_view", at=minute(4), id="k4"), RULES)
    assert step.late and step.corrected and step.retracted == 1
    assert [(t.seq, t.retracted, t.from_stage, t.to_stage, t.trigger_event_id) for t in step.transitions] == [
        (1, True, "none", "aware", "k10"), (2, False, "none", "aware", "k4"), (3, False, "aware", "appeal", "k4")]
    assert step.transitions[2].dwell_ms == 0 and step.transitions[2].occurred_at == minute(4)
    assert [(e.seq, e.stage) for e in step.state.journey] == [(2, Stage.AWARE), (3, Stage.APPEAL)]


def test_a_late_event_that_changes_no_row_emits_nothing():
    state = advance(None, click("c", "page_view", at=minute(1)), RULES).state
    state = advance(state, click("c", "search", at=minute(10)), RULES).state
    step = advance(state, click("c", "page_view", at=minute(5)), RULES)
    assert step.late and not step.corrected and step.transitions == []


def test_a_late_event_inserted_mid_chain_corrects_only_the_next_row():
    """A row whose from_stage and dwell are unchanged keeps its seq; the one after the new entry is redone."""
    state = None
    for event in [click("c", "page_view", at=minute(0), id="a"), click("c", "search", at=minute(10), id="s"),
                  purchase("c", at=minute(20), id="p")]:
        state = advance(state, event, RULES).state
    step = advance(state, click("c", "product_view", at=minute(5), id="v"), RULES)
    assert [(t.seq, t.retracted, t.from_stage, t.to_stage, t.dwell_ms) for t in step.transitions] == [
        (2, True, "aware", "ask", 600_000), (4, False, "aware", "appeal", 300_000),
        (5, False, "appeal", "ask", 300_000)]
    assert [(e.seq, e.stage) for e in step.state.journey] == [
        (1, Stage.AWARE), (4, Stage.APPEAL), (5, Stage.ASK), (3, Stage.ACT)]


def test_late_event_does_not_move_the_late_watermark_back():
    state = advance(None, click("c", "page_view", at=minute(10)), RULES).state
    state = advance(state, click("c", "like", at=minute(4)), RULES).state
    step = advance(state, click("c", "page_view", at=minute(5)), RULES)
    assert step.late  # still older than minute 10


def test_same_time_smaller_event_id_is_late():
    state = advance(None, click("c", "page_view", at=minute(1), id="b"), RULES).state
    assert advance(state, click("c", "page_view", at=minute(1), id="a"), RULES).late
    assert not advance(state, click("c", "page_view", at=minute(1), id="c"), RULES).late


def test_a_late_event_above_the_current_stage_supersedes_later_rows():
    """The issue's example: a click made after the purchase but delivered before it."""
    state = advance(None, click("c", "product_view", at=minute(5), id="k"), RULES).state
    step = advance(state, purchase("c", at=minute(1), id="p"), RULES)
    assert [(t.seq, t.retracted, t.from_stage, t.to_stage) for t in step.transitions] == [
        (1, True, "none", "aware"), (2, True, "aware", "appeal"), (3, False, "none", "aware"), (4, False, "aware", "act")]
    assert live(step.transitions) == live(replay_of([click("c", "product_view", at=minute(5), id="k"),
                                                    purchase("c", at=minute(1), id="p")]))


def test_late_events_end_as_the_replay():
    arrival = [
        click("c", "page_view", at=minute(30)),
        click("c", "product_view", at=minute(20)),
        click("c", "search", at=minute(10)),
        purchase("c", at=minute(0)),
        share("c", at=minute(40)),
    ]
    transitions = run(arrival)
    assert all(t.dwell_ms is None or t.dwell_ms >= 0 for t in transitions)
    assert live(transitions) == live(replay_of(arrival))
    assert [t.to_stage for t in replay_of(arrival)] == ["aware", "act", "advocate"]
    assert replay_of(arrival)[-1].dwell_ms == 40 * 60_000  # act was entered (in event time) at minute 0


def test_first_event_is_never_late():
    assert not advance(None, click("c", "page_view", at=minute(0)), RULES).late


@pytest.mark.parametrize("year", [1969, 2100, 9999])
def test_event_times_outside_what_clickhouse_stores_are_refused(year):
    from schemas.rejections import decode

    raw = (
        '{"type":"clickstream","schema_version":1,"event_id":"e","customer_id":"c",'
        f'"occurred_at":"{year}-06-01T00:00:00Z","action":"page_view"}}'
    ).encode()
    rejection = decode(raw, 65_536)
    assert rejection.code == "invalid_fields" and "occurred_at" in rejection.reason


# --- purity -----------------------------------------------------------------------------------


def test_advance_is_pure():
    state = advance(None, click("c", "page_view", at=minute(0)), RULES).state
    event = purchase("c", at=minute(3))
    first, second_ = advance(state, event, RULES), advance(state, event, RULES)
    assert first == second_
    assert state.stage == Stage.AWARE  # the input state is untouched


def test_no_state_means_a_fresh_state():
    event = click("c", "product_view", id="fresh")
    assert advance(None, event, RULES) == advance(CustomerState(), event, RULES)


# --- a customer who never stops sending (DESIGN.md §1d) ------------------------------------------


def test_a_duplicate_within_the_window_is_ignored_even_with_another_payload():
    state = None
    for i in range(RECENT_IDS):
        state = advance(state, click("c", "page_view", at=minute(i), id=f"e{i}"), RULES).state
    step = advance(state, purchase("c", at=minute(100), id="e0"), RULES)  # e0 is the oldest remembered
    assert step.duplicate and step.transitions == [] and step.state is state


def test_beyond_the_window_a_redelivered_event_is_late_and_emits_nothing():
    first = click("c", "product_view", at=minute(0), id="e0")
    state = advance(None, first, RULES).state
    for i in range(1, RECENT_IDS + 1):
        state = advance(state, click("c", "page_view", at=minute(i), id=f"e{i}"), RULES).state
    step = advance(state, first, RULES)  # forgotten id: applied again, and harmless
    assert not step.duplicate and step.late and step.transitions == []
    assert step.state.stage == state.stage and step.state.seq == state.seq


@settings(max_examples=60, deadline=None)
@given(st.lists(st.sampled_from(["page_view", "product_view", "search", "like"]), min_size=1, max_size=300),
       st.lists(st.integers(0, 299), max_size=40))
def test_redelivery_never_changes_the_transitions_and_the_state_stays_bounded(actions, redelivered):
    events = [click("c", action, at=minute(i), id=f"e{i}") for i, action in enumerate(actions)]
    with_copies = list(events)
    for index in redelivered:  # a copy of an earlier event, delivered right after a later one
        if index < len(events):
            with_copies.insert(min(len(with_copies), index + 5), events[index])
    state, emitted = None, []
    for event in with_copies:
        step = advance(state, event, RULES)
        state = step.state
        emitted.extend(step.transitions)
        assert len(state.recent) <= RECENT_IDS
    assert emitted == run(events)
