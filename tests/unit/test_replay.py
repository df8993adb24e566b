"""`replay()`: the offline reference — events sorted by (occurred_at, event_id), folded per customer."""

from __future__ import annotations

import random

import pytest

from fivea import CustomerState, Stage, advance, customer_key, order_key, replay
from tests.unit.builders import RULES, click, minute, moves, purchase, share

NONE_AWARE = ("none", "aware", "forward")


def journeys():
    """Three customers, two brands, with ties and duplicates: a small but busy input."""
    return [
        click("ann", "page_view", at=minute(0), id="a1", channel="ad"),
        click("ann", "product_view", at=minute(2), id="a2"),
        purchase("ann", at=minute(5), id="a3"),
        share("ann", "recommend", at=minute(9), id="a4", channel="social"),
        click("bob", "search", at=minute(1), id="b1", referrer="ann"),
        purchase("bob", at=minute(1), id="b0"),  # same time as b1: b0 sorts first
        click("bob", "page_view", at=minute(3), id="b1"),  # duplicate id: ignored
        click("ann", "page_view", at=minute(4), id="x1", brand="other"),
        share("ann", "review", rating=2, at=minute(6), id="x2", brand="other"),
        purchase("cyd", "refunded", at=minute(7), id="c1"),
    ]


def fold_in_order(events):
    """What replay must equal: advance() applied in (occurred_at, event_id) order."""
    states: dict[tuple[str, str], CustomerState] = {}
    out = []
    for event in sorted(events, key=lambda e: (e.occurred_at, e.event_id)):
        step = advance(states.get(customer_key(event)), event, RULES)
        states[customer_key(event)] = step.state
        out.extend(step.transitions)
    return out


def test_replay_equals_advance_in_event_time_order():
    assert list(replay(journeys(), RULES)) == fold_in_order(journeys())


def test_replay_sorts_by_event_time():
    events = [
        purchase("c", at=minute(5), id="late-in-file"),
        click("c", "page_view", at=minute(0), id="z-first"),
        click("c", "product_view", at=minute(3), id="m"),
    ]
    transitions = list(replay(events, RULES))
    assert [(t.trigger_event_id, t.to_stage) for t in transitions] == [
        ("z-first", "aware"),
        ("m", "appeal"),
        ("late-in-file", "act"),
    ]
    assert [t.dwell_ms for t in transitions] == [None, 3 * 60_000, 2 * 60_000]


def test_replay_breaks_time_ties_by_event_id():
    tied = [click("c", "product_view", at=minute(1), id="b"), purchase("c", at=minute(1), id="a")]
    transitions = list(replay(tied, RULES))
    assert moves(transitions) == [NONE_AWARE, ("aware", "act", "skip")]
    assert {t.trigger_event_id for t in transitions} == {"a"}  # "b" came second and is lower

    swapped = [click("c", "product_view", at=minute(1), id="a"), purchase("c", at=minute(1), id="b")]
    assert [t.trigger_event_id for t in replay(swapped, RULES)] == ["a", "a", "b"]


def test_shuffled_input_gives_the_same_output():
    expected = list(replay(journeys(), RULES))
    for seed in range(20):
        events = journeys()
        random.Random(seed).shuffle(events)
        assert list(replay(events, RULES)) == expected, f"seed {seed}"


def test_state_is_per_brand_and_customer():
    transitions = list(replay(journeys(), RULES))
    by_key = {}
    for t in transitions:
        by_key.setdefault((t.brand, t.customer_id), []).append((t.seq, t.to_stage))
    assert by_key == {
        ("default", "ann"): [(1, "aware"), (2, "appeal"), (3, "act"), (4, "advocate")],
        ("default", "bob"): [(1, "aware"), (2, "act")],
        ("other", "ann"): [(1, "aware"), (2, "ask")],
        ("default", "cyd"): [(1, "aware")],
    }


def test_duplicate_in_input_is_applied_once():
    bob = [t for t in replay(journeys(), RULES) if t.customer_id == "bob"]
    assert [t.trigger_event_id for t in bob] == ["b0", "b0"]  # b1 (search) is below act; its twin is ignored


def test_conflicting_duplicates_at_the_same_time_keep_the_first_in_input_order():
    # (occurred_at, event_id) ties completely: the sort is stable, so "first wins" means first
    # in the input, as in the stream (first to arrive). Only this case depends on input order.
    page = click("c", "page_view", at=minute(1), id="same")
    buy = purchase("c", at=minute(1), id="same")
    assert moves(replay([page, buy], RULES)) == [NONE_AWARE]
    assert moves(replay([buy, page], RULES)) == [NONE_AWARE, ("aware", "act", "skip")]


def test_order_key_is_time_then_id():
    event = click("c", "page_view", at=minute(2), id="e7")
    assert order_key(event) == (minute(2), "e7")
    assert customer_key(click("c", "page_view", brand="acme")) == ("acme", "c")


def test_replay_of_nothing_is_nothing():
    assert list(replay([], RULES)) == []


# --- invariants over generated inputs ---------------------------------------------------------

ACTIONS = ["page_view", "product_view", "search", "unknown_thing", "add_to_cart", "like"]


def random_events(rnd: random.Random) -> list:
    """Distinct events plus exact redeliveries of some of them (Kafka's at-least-once)."""
    events = []
    for i in range(rnd.randint(0, 20)):
        cid = rnd.choice(["c1", "c2", "c3"])
        at = minute(rnd.randint(0, 30))  # few distinct times: many ties broken by id
        eid = f"e{rnd.randint(0, 99):02d}-{i}"
        kind = rnd.choice(["click", "buy", "refund", "share", "review"])
        if kind == "click":
            events.append(click(cid, rnd.choice(ACTIONS), at=at, id=eid))
        elif kind in ("buy", "refund"):
            events.append(purchase(cid, "completed" if kind == "buy" else "refunded", at=at, id=eid))
        elif kind == "share":
            events.append(share(cid, "share", at=at, id=eid))
        else:
            events.append(share(cid, "review", rating=rnd.choice([None, 1, 2, 3, 4, 5]), at=at, id=eid))
    if events:
        events += rnd.choices(events, k=rnd.randint(0, 5))
    return events


@pytest.mark.parametrize("seed", range(100))
def test_replay_invariants(seed):
    rnd = random.Random(seed)
    events = random_events(rnd)
    transitions = list(replay(events, RULES))
    shuffled = list(events)
    rnd.shuffle(shuffled)
    assert list(replay(shuffled, RULES)) == transitions

    per_customer = {}
    for t in transitions:
        per_customer.setdefault(t.customer_id, []).append(t)
    assert set(per_customer) == {e.customer_id for e in events}  # everyone seen is aware
    for path in per_customer.values():
        assert [t.seq for t in path] == list(range(1, len(path) + 1))
        assert moves(path[:1]) == [NONE_AWARE]
        assert all(a.to_stage == b.from_stage for a, b in zip(path, path[1:]))
        stages = [Stage.parse(t.to_stage) for t in path]
        assert stages == sorted(set(stages))
        assert path[0].dwell_ms is None
        assert all(t.dwell_ms is not None and t.dwell_ms >= 0 for t in path[1:])
        assert all(b.occurred_at >= a.occurred_at for a, b in zip(path, path[1:]))
