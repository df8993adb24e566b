"""The rule table (DESIGN.md §1): signals, influence zones, and rules loaded from TOML."""

from __future__ import annotations

from pathlib import Path

import pytest

from fivea import DEFAULT_RULES, Rules, RulesError, Stage
from tests.unit.builders import RULES, click, purchase, share

REPO = Path(__file__).resolve().parents[2]

# Written out from the DESIGN.md §1 table, not from DEFAULT_RULES: the defaults must match the doc.
DESIGN_ACTIONS = {
    "aware": ["page_view", "ad_impression", "ad_click", "email_open", "landing"],
    "appeal": ["product_view", "like", "wishlist_add", "follow", "video_view", "newsletter_signup"],
    "ask": [
        "search", "review_read", "compare", "question", "support_chat",
        "add_to_cart", "cart_view", "checkout_start", "store_visit",
    ],
}
ACTION_CASES = [(action, stage) for stage, actions in DESIGN_ACTIONS.items() for action in actions]
OTHER_CHANNELS = ["referral", "social", "share", "review_site", "community"]
OUTER_CHANNELS = ["ad", "display", "paid_search", "paid_social", "email", "affiliate", "campaign"]


# --- signals ---------------------------------------------------------------------------------


@pytest.mark.parametrize(("action", "stage"), ACTION_CASES)
def test_every_default_clickstream_action_maps_to_its_stage(action, stage):
    assert RULES.signal(click("c", action)) == Stage.parse(stage)


def test_default_action_table_is_exactly_the_design_table():
    assert {a: s.label for a, s in RULES.clickstream_actions.items()} == dict(
        (action, stage) for action, stage in ACTION_CASES
    )


@pytest.mark.parametrize("action", ["checkout_complete", "Page_View", "x"])
def test_unknown_clickstream_action_is_aware(action):
    assert RULES.signal(click("c", action)) == Stage.AWARE


@pytest.mark.parametrize(
    ("event", "stage"),
    [
        (purchase("c", "completed"), Stage.ACT),
        (purchase("c", "refunded"), Stage.NONE),
        (share("c", "share"), Stage.ADVOCATE),
        (share("c", "recommend"), Stage.ADVOCATE),
        (share("c", "invite"), Stage.ADVOCATE),
        (share("c", "review"), Stage.ASK),
        (share("c", "review", rating=1), Stage.ASK),
        (share("c", "review", rating=2), Stage.ASK),
        (share("c", "review", rating=3), Stage.ASK),
        (share("c", "review", rating=4), Stage.ADVOCATE),
        (share("c", "review", rating=5), Stage.ADVOCATE),
        (share("c", "share", rating=1), Stage.ADVOCATE),  # the rating only matters for reviews
    ],
    ids=lambda v: v if isinstance(v, Stage) else getattr(v, "kind", None) or getattr(v, "status", None),
)
def test_purchase_and_share_signals(event, stage):
    assert RULES.signal(event) == stage


def test_signal_of_a_non_event_is_a_type_error():
    with pytest.raises(TypeError):
        RULES.signal({"type": "clickstream"})  # type: ignore[arg-type]


# --- influence zone --------------------------------------------------------------------------

INFLUENCE = [
    # (event, zone, why)
    (click("c", "page_view", referrer="r1"), "other", "referrer_id"),
    (click("c", "page_view", referrer="r1", channel="ad"), "other", "referrer beats an outer channel"),
    (click("c", "page_view", referrer="r1", campaign="spring"), "other", "referrer beats a campaign"),
    (click("c", "page_view", referrer="r1", channel="direct"), "other", "referrer beats an own channel"),
    *[(click("c", "page_view", channel=ch), "other", f"channel {ch}") for ch in OTHER_CHANNELS],
    (click("c", "page_view", channel="social", campaign="spring"), "other", "other channel beats campaign"),
    (purchase("c", channel="referral"), "other", "purchase via referral"),
    (share("c", channel="community"), "other", "share via community"),
    (click("c", "page_view", campaign="spring"), "outer", "campaign"),
    (click("c", "page_view", campaign="spring", channel="direct"), "outer", "campaign beats own channel"),
    (click("c", "page_view", campaign="spring", channel="organic"), "outer", "campaign, organic"),
    *[(click("c", "page_view", channel=ch), "outer", f"channel {ch}") for ch in OUTER_CHANNELS],
    (purchase("c", channel="email"), "outer", "purchase via email"),
    (share("c", channel="paid_social"), "outer", "share via paid_social"),
    *[(click("c", "page_view", channel=ch), "own", f"channel {ch}") for ch in ["direct", "organic", "app"]],
    (click("c", "page_view"), "own", "no channel"),
    (click("c", "page_view", channel="tv"), "own", "an unlisted channel"),
    (purchase("c"), "own", "purchase, no channel"),
    (purchase("c", channel="app"), "own", "purchase in app"),
    (share("c", channel="organic"), "own", "share, organic"),
]


@pytest.mark.parametrize(("event", "zone"), [c[:2] for c in INFLUENCE], ids=[c[2] for c in INFLUENCE])
def test_influence_zone(event, zone):
    assert RULES.influence(event) == zone


def test_default_channel_lists_are_the_design_lists():
    assert RULES.other_channels == frozenset(OTHER_CHANNELS)
    assert RULES.outer_channels == frozenset(OUTER_CHANNELS)


# --- rules from TOML -------------------------------------------------------------------------


def test_deploy_rules_toml_is_exactly_the_defaults():
    text = (REPO / "deploy" / "rules.toml").read_text()
    assert Rules.from_toml(text, source="deploy/rules.toml") == Rules.default()


def test_empty_file_and_default_mapping_are_the_defaults():
    assert Rules.from_toml("") == Rules.default()
    assert Rules.from_mapping(DEFAULT_RULES) == Rules.default()


def test_overriding_one_section_keeps_the_others_default():
    rules = Rules.from_toml('[purchase.status]\ncompleted = "act"\nrefunded = "ask"\n')
    default = Rules.default()
    assert rules.signal(purchase("c", "refunded")) == Stage.ASK
    assert rules.clickstream_actions == default.clickstream_actions
    assert rules.clickstream_default == default.clickstream_default
    assert rules.share_kinds == default.share_kinds
    assert rules.review_min_advocate_rating == default.review_min_advocate_rating
    assert (rules.other_channels, rules.outer_channels) == (default.other_channels, default.outer_channels)


def test_overriding_influence_keeps_signals_default():
    rules = Rules.from_toml('[influence]\nother_channels = ["forum"]\n')
    assert rules.influence(click("c", "page_view", channel="forum")) == "other"
    assert rules.influence(click("c", "page_view", channel="social")) == "own"  # list replaced
    assert rules.outer_channels == Rules.default().outer_channels
    assert rules.clickstream_actions == Rules.default().clickstream_actions


def test_review_threshold_and_default_stage_are_configurable():
    rules = Rules.from_toml('[share.review]\nmin_advocate_rating = 5\n[clickstream]\ndefault = "appeal"\n')
    assert rules.signal(share("c", "review", rating=4)) == Stage.ASK
    assert rules.signal(share("c", "review", rating=5)) == Stage.ADVOCATE
    assert rules.signal(click("c", "something_new")) == Stage.APPEAL
    assert rules.signal(click("c", "search")) == Stage.ASK  # actions table untouched


def test_a_rule_change_needs_no_code_change():
    rules = Rules.from_toml('[clickstream.actions]\ndemo_request = "act"\n')
    assert rules.signal(click("c", "demo_request")) == Stage.ACT


def test_a_stage_table_in_the_file_is_merged_over_the_defaults():
    rules = Rules.from_toml('[clickstream.actions]\ndemo_request = "act"\nlike = "ask"\n')
    assert rules.signal(click("c", "demo_request")) == Stage.ACT  # added
    assert rules.signal(click("c", "like")) == Stage.ASK  # remapped
    assert rules.signal(click("c", "product_view")) == Stage.APPEAL  # default kept


def _error(text: str) -> str:
    with pytest.raises(RulesError) as info:
        Rules.from_toml(text, source="my-rules.toml")
    return str(info.value)


@pytest.mark.parametrize(
    ("text", "must_name"),
    [
        ('[bogus]\nx = 1\n', ["bogus", "my-rules.toml"]),
        ('[clickstream.actions]\nlike = "loved"\n', ["clickstream.actions.like", "loved"]),
        ('[clickstream]\ndefault = "nowhere"\n', ["clickstream.default", "nowhere"]),
        ('[purchase.status]\ncompleted = 4\n', ["purchase.status.completed"]),
        ('[share.review]\notherwise = "maybe"\n', ["share.review.otherwise", "maybe"]),
        ('[share.kinds]\nshare = "Advocates"\n', ["share.kinds.share"]),
        ('[influence]\nother_channels = ["email"]\n', ["email", "my-rules.toml"]),
        ('[influence]\nouter_channels = ["ad", "social"]\n', ["social"]),
        ('[share.review]\nmin_advocate_rating = "4"\n', ["min_advocate_rating"]),
        ('[share.review]\nmin_advocate_rating = 9\n', ["min_advocate_rating"]),
        ('[clickstream.actions\n', ["my-rules.toml", "TOML"]),
        ('clickstream = {actions = [1, 2]}\n', ["clickstream.actions"]),
    ],
    ids=[
        "unknown section", "bad stage in actions", "bad default stage", "stage not a string",
        "bad review stage", "stage names are case-sensitive", "channel in both lists",
        "outer list overlapping other", "rating not an int", "rating out of range", "invalid TOML",
        "actions not a table",
    ],
)
def test_bad_rules_raise_rules_error_naming_the_entry(text, must_name):
    message = _error(text)
    for part in must_name:
        assert part in message


@pytest.mark.parametrize(
    ("text", "entry"),
    [
        ('[purchase.statuses]\ncompleted = "act"\n', "statuses"),
        ('[clickstream]\ndefualt = "ask"\n', "defualt"),
        ('[share.reviews]\nmin_advocate_rating = 5\n', "reviews"),
    ],
    ids=["purchase.statuses", "clickstream.defualt", "share.reviews"],
)
def test_unknown_nested_section_or_key_raises(text, entry):
    assert entry in _error(text)


def test_section_that_is_not_a_table_raises():
    assert "clickstream" in _error("clickstream = 5\n")


def test_channel_list_given_as_a_string_raises():
    assert "other_channels" in _error('[influence]\nother_channels = "referral"\n')


def test_boolean_rating_raises():
    assert "min_advocate_rating" in _error("[share.review]\nmin_advocate_rating = true\n")


def test_every_rules_error_names_the_file():
    assert "my-rules.toml" in _error('[clickstream.actions]\nlike = "loved"\n')
