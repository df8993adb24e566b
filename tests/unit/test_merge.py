"""The merge rule (fivea/merge.py): table-driven cases, and hypothesis against the replay of the union."""

from __future__ import annotations

import random

from hypothesis import given, settings
from hypothesis import strategies as st

from fivea import replay
from fivea.merge import Link, chain_rows, event_links, journey_of, merge
from fivea.path import event_time_us
from fivea.stages import Stage
from fivea import advance
from tests.unit.builders import RULES, click, live, minute, purchase, run, share

ACTIONS = ["page_view", "product_view", "like", "search", "compare", "add_to_cart"]


def event(kind: int, action: int, at: int, n: int):
    if kind == 0:
        return click("c", ACTIONS[action % len(ACTIONS)], at=minute(at), id=f"e{n:03d}")
    if kind == 1:
        return purchase("c", "completed" if action % 3 else "refunded", at=minute(at), id=f"e{n:03d}")
    return share("c", "review" if action % 2 else "share", rating=action % 5 + 1, at=minute(at), id=f"e{n:03d}")


# Few distinct minutes: ties in event time are common, so the event-id tie-break is exercised.
events_strategy = st.lists(st.tuples(st.integers(0, 2), st.integers(0, 11), st.integers(0, 6)), min_size=1,
                           max_size=14).map(lambda specs: [event(k, a, t, n) for n, (k, a, t) in enumerate(specs)])


def replayed(events) -> list[tuple]:
    """The replay's transitions, in the fields the chain decides."""
    return [(event_time_us(t.occurred_at), t.trigger_event_id, t.from_stage, t.to_stage, t.kind, t.dwell_ms)
            for t in replay(events, RULES)]


def as_rows(journey) -> list[tuple]:
    return [(r.link.at_us, r.link.event_id, r.from_stage, r.to_stage, r.kind, r.dwell_ms) for r in chain_rows(journey)]


# -- table-driven --------------------------------------------------------------------------------


def test_a_late_click_before_a_purchase_becomes_the_aware_entry():
    bought = purchase("c", at=minute(10), id="p")
    late_click = click("c", "product_view", at=minute(2), id="k")
    merged = merge(journey_of([bought], RULES), event_links(late_click, RULES))
    assert [(l.event_id, l.stage) for l in merged] == [("k", Stage.AWARE), ("k", Stage.APPEAL), ("p", Stage.ACT)]
    assert [(r.from_stage, r.to_stage, r.kind, r.dwell_ms) for r in chain_rows(merged)] == [
        ("none", "aware", "forward", None), ("aware", "appeal", "forward", 0), ("appeal", "act", "skip", 480_000)]


def test_a_click_made_after_the_purchase_but_delivered_first_is_superseded():
    """The issue's example: the replay shows aware -> act; the stream saw aware -> appeal first."""
    first_seen = click("c", "product_view", at=minute(5), id="k")
    bought = purchase("c", at=minute(1), id="p")
    merged = merge(journey_of([first_seen], RULES), event_links(bought, RULES))
    assert [(l.event_id, l.stage) for l in merged] == [("p", Stage.AWARE), ("p", Stage.ACT)]


def test_merging_a_journey_with_itself_changes_nothing():
    journey = journey_of([click("c", "page_view", at=minute(0)), purchase("c", at=minute(3))], RULES)
    assert merge(journey, journey) == journey


def test_ties_in_time_are_broken_by_event_id_then_stage():
    a = Link(10, "b", Stage.APPEAL)
    b = Link(10, "a", Stage.ASK)
    assert merge((Link(10, "b", Stage.AWARE), a), (Link(10, "a", Stage.AWARE), b)) == (Link(10, "a", Stage.AWARE), b)


# -- properties ----------------------------------------------------------------------------------


@settings(max_examples=400, deadline=None)
@given(events_strategy, st.randoms(use_true_random=False))
def test_merging_two_journeys_equals_replaying_the_union(events, rng: random.Random):
    side = [rng.random() < 0.5 for _ in events]
    a = [e for e, left in zip(events, side) if left]
    b = [e for e, left in zip(events, side) if not left]
    merged = merge(journey_of(a, RULES), journey_of(b, RULES))
    assert merged == journey_of(events, RULES)
    assert as_rows(merged) == replayed(events)


@settings(max_examples=300, deadline=None)
@given(events_strategy, st.randoms(use_true_random=False))
def test_events_in_any_arrival_order_merged_one_at_a_time_give_the_replay(events, rng: random.Random):
    arrival = list(events)
    rng.shuffle(arrival)
    journey: tuple = ()
    for late_or_not in arrival:
        journey = merge(journey, event_links(late_or_not, RULES))
    assert as_rows(journey) == replayed(events)


@settings(max_examples=300, deadline=None)
@given(events_strategy, events_strategy, events_strategy)
def test_merging_is_commutative_associative_and_idempotent(x, y, z):
    a, b, c = (journey_of(e, RULES) for e in (x, y, z))
    assert merge(a, b) == merge(b, a)
    assert merge(merge(a, b), c) == merge(a, merge(b, c)) == merge(a, b, c)
    assert merge(a, a) == a and merge(merge(a, b), b) == merge(a, b)
    assert len(merge(a, b, c)) <= 5


# -- the stream's way: events applied through `advance` in any arrival order -------------------------


@settings(max_examples=400, deadline=None)
@given(events_strategy, st.randoms(use_true_random=False))
def test_any_arrival_order_ends_with_the_replays_live_rows(events, rnd):
    """DESIGN.md §1b's promise on one customer: live rows == the replay, every field but seq."""
    arrival = list(events)
    rnd.shuffle(arrival)
    emitted = run(arrival)
    assert live(emitted) == live(replay(events, RULES))


@settings(max_examples=200, deadline=None)
@given(events_strategy, st.randoms(use_true_random=False))
def test_every_retraction_names_a_live_row_and_seqs_are_never_reused(events, rnd):
    arrival = list(events)
    rnd.shuffle(arrival)
    published: dict[int, object] = {}
    withdrawn: set[int] = set()
    for t in run(arrival):
        if t.retracted:
            assert t.seq in published and t.seq not in withdrawn
            assert {**published[t.seq].model_dump(), "retracted": True} == t.model_dump()  # the row as published
            withdrawn.add(t.seq)
        else:
            assert t.seq not in published
            published[t.seq] = t


@settings(max_examples=200, deadline=None)
@given(events_strategy, st.randoms(use_true_random=False), st.data())
def test_redelivery_in_any_order_changes_nothing_more(events, rnd, data):
    """Events applied again (beyond the id window too) after the journey is complete: no output."""
    from fivea import CustomerState

    state = None
    for event in events:
        state = advance(state, event, RULES).state
    again = data.draw(st.lists(st.sampled_from(events), max_size=8))
    forgetful = state._replace(recent=())  # as if the ids had left the window
    for event in again:
        step = advance(forgetful, event, RULES)
        assert step.transitions == [] and step.state.journey == state.journey
        forgetful = step.state._replace(recent=())
    assert isinstance(state, CustomerState)


@settings(max_examples=400, deadline=None)
@given(events_strategy, st.randoms(use_true_random=False), st.data())
def test_a_crash_between_rows_and_state_ends_as_the_replay(events, rnd, data):
    """Kill -9 after a lost attempt published rows its state never recorded (streams/path_service.py).

    The first attempt applies the events in one arrival order; its state is kept only up to
    event `landed` but its rows up to event `published` reached the log. The next owner
    reconciles the state with the log's tail (from an earlier batch start `tail_from`), then
    gets every event from `landed` on again, in another order. The table's live rows (log
    order, retraction wins) must equal the replay.
    """
    from fivea import reconcile

    first = list(events)
    rnd.shuffle(first)
    landed = data.draw(st.integers(0, len(first)))
    published_upto = data.draw(st.integers(landed, len(first)))
    tail_from = data.draw(st.integers(0, landed))
    memory, state, log, tail_start = None, None, [], 0
    for i, event in enumerate(first[:published_upto]):
        if i == tail_from:
            tail_start = len(log)
        step = advance(memory, event, RULES)
        memory = step.state
        log.extend(step.transitions)
        if i < landed:
            state = memory
    if tail_from >= published_upto:
        tail_start = len(log)
    state, fixes = reconcile(state, log[tail_start:])
    log.extend(fixes)
    again = first[landed:]
    rnd.shuffle(again)
    for event in again:
        step = advance(state, event, RULES)
        state = step.state
        log.extend(step.transitions)
    assert live(log) == live(replay(events, RULES))
    assert reconcile(state, log[tail_start:])[1] == []  # idempotent: nothing left to fix


def test_reconcile_keeps_the_history_of_a_state_written_before_journeys_were_kept():
    """A legacy state (format < 3) lists only its last row: the rows before it are not a lost attempt's."""
    from fivea import CustomerState, reconcile
    from fivea.merge import Entry

    state = CustomerState((Entry(event_time_us(minute(5)), "", Stage.ASK, 2, None),), seq=2)
    history = run([click("c", "page_view", at=minute(1), id="a"), click("c", "search", at=minute(5), id="b")])
    assert reconcile(state, history) == (state, [])
    lost = run([click("c", "page_view", at=minute(1), id="a"), click("c", "search", at=minute(5), id="b"),
                purchase("c", at=minute(9), id="p")])
    fixed, fixes = reconcile(state, lost)
    assert [(t.seq, t.retracted) for t in fixes] == [(3, True)] and fixed.seq == 3
