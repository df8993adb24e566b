"""The rule table: which signal stage an event gives, and which influence zone it belongs to.

Rules are data (DESIGN.md §1). `Rules.from_mapping` takes the parsed form of a TOML rules
file (see deploy/rules.toml, which equals the defaults). Entries left out keep the defaults;
name -> stage tables (actions, statuses, kinds) are merged over the defaults, so a file can
add or remap one action; channel lists are replaced whole.
"""

from __future__ import annotations

import tomllib
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from fivea.stages import Stage
from schemas import AnyEvent, ClickstreamEvent, PurchaseEvent, ShareEvent
from schemas.segment import SegmentMapping

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
    # The Segment Spec as an input (DESIGN.md §2b, schemas/segment.py): the e-commerce spec v2's
    # event names; other track names count as contact (aware), like unknown clickstream actions.
    "segment": {
        "brand": "topic",
        "events": {
            **dict.fromkeys(["Page Viewed", "Screen Viewed", "Promotion Viewed", "Product List Viewed"], "aware"),
            **dict.fromkeys(["Product Viewed", "Product Clicked", "Promotion Clicked", "Product Added to Wishlist"],
                            "appeal"),
            **dict.fromkeys(
                [
                    "Products Searched", "Product List Filtered", "Product Added", "Cart Viewed", "Checkout Started",
                    "Checkout Step Viewed", "Checkout Step Completed", "Payment Info Entered", "Coupon Entered",
                ],
                "ask",
            ),
            "Order Completed": "act",
            **dict.fromkeys(["Product Shared", "Cart Shared"], "advocate"),
            "Product Reviewed": "review",
            **dict.fromkeys(["Order Refunded", "Order Cancelled", "Product Removed", "Coupon Denied"], "none"),
        },
        "mediums": {
            "cpc": "paid_search", "ppc": "paid_search", "paid": "paid_search", "paid_search": "paid_search",
            "paid_social": "paid_social", "display": "display", "banner": "display", "email": "email",
            "affiliate": "affiliate", "social": "social", "referral": "referral",
        },
    },
}


class RulesError(ValueError):
    """A rules file that cannot be used; the message names the offending entry."""


#: Tables of name -> stage: a file's entries are merged over the defaults (add or remap names).
STAGE_TABLES = ("clickstream.actions", "purchase.status", "share.kinds")
#: Other name tables merged the same way: Segment event names (-> stage or "review"), mediums (-> channel).
NAME_TABLES = (*STAGE_TABLES, "segment.events", "segment.mediums")


def _check_shape(data: Any, default: Any, where: str) -> None:
    """Same nesting as the defaults, no unknown keys (typos must not silently keep defaults)."""
    if not isinstance(data, Mapping):
        raise RulesError(f"{where or 'rules'}: expected a table, got {data!r}")
    for key, value in data.items():
        path = f"{where}.{key}" if where else str(key)
        if key not in default:
            known = ", ".join(sorted(default))
            raise RulesError(f"{path}: unknown entry (known here: {known})")
        if path in NAME_TABLES:
            if not isinstance(value, Mapping):
                raise RulesError(f"{path}: expected a table of name = value")
        elif isinstance(default[key], Mapping):
            _check_shape(value, default[key], path)


def _stage(value: Any, where: str) -> Stage:
    if not isinstance(value, str):
        raise RulesError(f"{where}: expected a stage name, got {value!r}")
    try:
        return Stage.parse(value)
    except ValueError as exc:
        raise RulesError(f"{where}: {exc}") from None


def _value(data: Mapping[str, Any], path: str) -> Any:
    """The file's value at a dotted path, else the default's (stage tables: merged)."""
    node: Any = data
    default: Any = DEFAULT_RULES
    for part in path.split("."):
        default = default[part]
        node = node.get(part) if isinstance(node, Mapping) else None
    if path in NAME_TABLES:
        return {**default, **(node or {})}
    return default if node is None else node


def _stage_table(data: Mapping[str, Any], path: str) -> dict[str, Stage]:
    return {str(name): _stage(value, f"{path}.{name}") for name, value in _value(data, path).items()}


def _channels(data: Mapping[str, Any], path: str) -> frozenset[str]:
    value = _value(data, path)
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        raise RulesError(f"{path}: expected a list of channel names, got {value!r}")
    return frozenset(value)


def _segment(data: Mapping[str, Any]) -> SegmentMapping:
    events = {}
    for name, value in _value(data, "segment.events").items():
        if value != "review":
            _stage(value, f"segment.events.{name!r}")  # a stage name, or "review" (rated by the share rules)
        events[str(name)] = value
    mediums = _value(data, "segment.mediums")
    for medium, channel in mediums.items():
        if not isinstance(channel, str) or not channel:
            raise RulesError(f"segment.mediums.{medium}: expected a channel name, got {channel!r}")
    brand = _value(data, "segment.brand")
    if brand not in ("topic", "property"):
        raise RulesError(f"segment.brand: expected \"topic\" or \"property\", got {brand!r}")
    return SegmentMapping(events, {str(k).lower(): v for k, v in mediums.items()}, brand)


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
    segment: SegmentMapping = SegmentMapping()
    segment_actions: Mapping[str, Stage] = field(default_factory=dict)  # Segment track names arriving as clicks
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
        try:
            _check_shape(data, DEFAULT_RULES, "")
            rating = _value(data, "share.review.min_advocate_rating")
            if isinstance(rating, bool) or not isinstance(rating, int) or not 1 <= rating <= 6:
                raise RulesError(f"share.review.min_advocate_rating: expected an integer 1-6, got {rating!r}")
            other = _channels(data, "influence.other_channels")
            outer = _channels(data, "influence.outer_channels")
            if other & outer:
                raise RulesError(f"influence: channels in both lists: {sorted(other & outer)}")
            segment = _segment(data)
            # A Segment track that is neither an order nor a share arrives as a clickstream event
            # whose action is its name (schemas/segment.py): its stage comes from the same table.
            segment_actions = {name: Stage.parse(value) for name, value in segment.events.items() if value != "review"}
            return cls(
                clickstream_actions=_stage_table(data, "clickstream.actions"),
                segment_actions=segment_actions,
                clickstream_default=_stage(_value(data, "clickstream.default"), "clickstream.default"),
                purchase_status=_stage_table(data, "purchase.status"),
                share_kinds=_stage_table(data, "share.kinds"),
                review_min_advocate_rating=rating,
                review_advocate=_stage(_value(data, "share.review.advocate"), "share.review.advocate"),
                review_otherwise=_stage(_value(data, "share.review.otherwise"), "share.review.otherwise"),
                other_channels=other,
                outer_channels=outer,
                segment=segment,
                source=source,
            )
        except RulesError as exc:
            raise RulesError(f"{source}: {exc}") from None

    def signal(self, event: AnyEvent) -> Stage:
        """The stage an event is evidence of (NONE: no signal)."""
        match event:
            case ClickstreamEvent(action=action):
                stage = self.clickstream_actions.get(action)
                if stage is None:
                    stage = self.segment_actions.get(action, self.clickstream_default)
                return stage
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
        click = event if type(event) is ClickstreamEvent else None  # only clicks carry referrer, campaign
        if (click and click.referrer_id) or channel in self.other_channels:
            return "other"
        if (click and click.campaign) or channel in self.outer_channels:
            return "outer"
        return "own"
