"""The rule table: which signal stage an event gives, and which influence zone it belongs to.

Rules are data (DESIGN.md §1). `Rules.from_mapping` takes the parsed form of a TOML rules
file (see deploy/rules.toml, which equals the defaults); sections left out keep the defaults.
"""

from __future__ import annotations

import tomllib
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from fivea.stages import Stage
from schemas import AnyEvent, ClickstreamEvent, PurchaseEvent, ShareEvent

DEFAULT_RULES: dict[str, Any] = {
    "clickstream": {
        "default": "aware",
        "actions": {
            **dict.fromkeys(["page_view", "ad_impression", "ad_click", "email_open", "landing"], "aware"),
            **dict.fromkeys(
                ["product_view", "like", "wishlist_add", "follow", "video_view", "newsletter_signup"], "appeal"
            ),
            **dict.fromkeys(
                [
                    "search", "review_read", "compare", "question", "support_chat",
                    "add_to_cart", "cart_view", "checkout_start", "store_visit",
                ],
                "ask",
            ),
        },
    },
    "purchase": {"status": {"completed": "act", "refunded": "none"}},
    "share": {
        "kinds": {"share": "advocate", "recommend": "advocate", "invite": "advocate"},
        "review": {"min_advocate_rating": 4, "advocate": "advocate", "otherwise": "ask"},
    },
    "influence": {
        "other_channels": ["referral", "social", "share", "review_site", "community"],
        "outer_channels": ["ad", "display", "paid_search", "paid_social", "email", "affiliate", "campaign"],
    },
}


class RulesError(ValueError):
    """A rules file that cannot be used; the message names the offending entry."""


def _stage(value: Any, where: str) -> Stage:
    if not isinstance(value, str):
        raise RulesError(f"{where}: expected a stage name, got {value!r}")
    try:
        return Stage.parse(value)
    except ValueError as exc:
        raise RulesError(f"{where}: {exc}") from None


def _stage_map(mapping: Any, where: str) -> dict[str, Stage]:
    if not isinstance(mapping, Mapping):
        raise RulesError(f"{where}: expected a table of name = stage")
    return {str(name): _stage(value, f"{where}.{name}") for name, value in mapping.items()}


def _section(data: Mapping[str, Any], path: str) -> Any:
    """Value at a dotted path of `data`, falling back to the default at that path."""
    node: Any = data
    default: Any = DEFAULT_RULES
    for part in path.split("."):
        default = default[part]
        node = node.get(part) if isinstance(node, Mapping) else None
    return default if node is None else node


@dataclass(frozen=True)
class Rules:
    clickstream_actions: Mapping[str, Stage]
    clickstream_default: Stage
    purchase_status: Mapping[str, Stage]
    share_kinds: Mapping[str, Stage]
    review_min_advocate_rating: int
    review_advocate: Stage
    review_otherwise: Stage
    other_channels: frozenset[str]
    outer_channels: frozenset[str]
    source: str = field(default="defaults", compare=False)

    @classmethod
    def default(cls) -> "Rules":
        return cls.from_mapping({})

    @classmethod
    def from_toml(cls, text: str, source: str = "rules file") -> "Rules":
        try:
            data = tomllib.loads(text)
        except tomllib.TOMLDecodeError as exc:
            raise RulesError(f"{source}: not valid TOML: {exc}") from None
        return cls.from_mapping(data, source=source)

    @classmethod
    def from_mapping(cls, data: Mapping[str, Any], source: str = "defaults") -> "Rules":
        known = set(DEFAULT_RULES)
        unknown = set(data) - known
        if unknown:
            raise RulesError(f"{source}: unknown section(s) {sorted(unknown)}; known: {sorted(known)}")
        rating = _section(data, "share.review.min_advocate_rating")
        if not isinstance(rating, int) or not 1 <= rating <= 6:
            raise RulesError(f"{source}: share.review.min_advocate_rating must be an integer 1-6")
        other = frozenset(map(str, _section(data, "influence.other_channels")))
        outer = frozenset(map(str, _section(data, "influence.outer_channels")))
        if other & outer:
            raise RulesError(f"{source}: channels in both influence lists: {sorted(other & outer)}")
        return cls(
            clickstream_actions=_stage_map(_section(data, "clickstream.actions"), "clickstream.actions"),
            clickstream_default=_stage(_section(data, "clickstream.default"), "clickstream.default"),
            purchase_status=_stage_map(_section(data, "purchase.status"), "purchase.status"),
            share_kinds=_stage_map(_section(data, "share.kinds"), "share.kinds"),
            review_min_advocate_rating=rating,
            review_advocate=_stage(_section(data, "share.review.advocate"), "share.review.advocate"),
            review_otherwise=_stage(_section(data, "share.review.otherwise"), "share.review.otherwise"),
            other_channels=other,
            outer_channels=outer,
            source=source,
        )

    def signal(self, event: AnyEvent) -> Stage:
        """The stage an event is evidence of (NONE: no signal)."""
        match event:
            case ClickstreamEvent(action=action):
                return self.clickstream_actions.get(action, self.clickstream_default)
            case PurchaseEvent(status=status):
                return self.purchase_status.get(status, Stage.NONE)
            case ShareEvent(kind="review", rating=rating):
                if rating is not None and rating >= self.review_min_advocate_rating:
                    return self.review_advocate
                return self.review_otherwise
            case ShareEvent(kind=kind):
                return self.share_kinds.get(kind, Stage.NONE)
        raise TypeError(f"not an event: {type(event).__name__}")

    def influence(self, event: AnyEvent) -> str:
        """Kotler's O-zone of the event: `other` (peers), `outer` (marketing) or `own`."""
        channel = event.channel
        if getattr(event, "referrer_id", None) or channel in self.other_channels:
            return "other"
        if getattr(event, "campaign", None) or channel in self.outer_channels:
            return "outer"
        return "own"
