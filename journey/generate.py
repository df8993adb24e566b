"""A simulated population walking the 5A path: realistic test and demo data, deterministic by seed.

Customers arrive over the first 80% of the time span through a channel mix (direct, organic,
ads, email, social, ...; outer channels carry a campaign). At each stage a customer moves on
with the probability of their `PathProfile` after a random delay, emitting the clickstream,
purchase and share events a real customer would, plus same-stage "noise" events. The path
is not a straight line: impulse buyers go aware -> act, researchers go aware -> ask, fans
advocate without buying. Advocates' shares bring new customers whose first event carries
`referrer_id` and a referral channel, so referral reach and the `other` influence zone have
real data. `PRESETS` hold profiles for Kotler's four path shapes; docs/generator.md explains
them. Events come out in event-time order and are produced lazily (memory stays bounded by
the journeys still in progress, not by the population).

`generate()` yields valid event dicts; `generate_lines()` / `Simulation.lines()` yield JSON
Lines, optionally mixed with a fraction of realistic malformed records. `write_lines()` and
`publish()` send lines to a file or to Kafka, paced by a `Pacer` and reported by `Progress`.
"""

from __future__ import annotations

import math
import random
import time
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from heapq import heappop, heappush
from typing import IO, TYPE_CHECKING, Any, ClassVar, NamedTuple

import orjson

if TYPE_CHECKING:
    from journey.settings import Settings

AWARE_ACTIONS = ("page_view", "ad_impression", "ad_click", "email_open", "landing")
APPEAL_ACTIONS = ("product_view", "like", "wishlist_add", "follow", "video_view", "newsletter_signup")
ASK_ACTIONS = ("search", "review_read", "compare", "question", "support_chat", "add_to_cart", "cart_view")
RESEARCH_ACTIONS = ("search", "review_read", "compare", "question")  # asking before any appeal
CHANNEL_MIX = {  # channel -> weight for customers not brought by a referral
    "direct": 14, "organic": 22, "app": 6, "ad": 10, "display": 6, "paid_search": 12,
    "paid_social": 8, "email": 8, "affiliate": 3, "social": 7, "review_site": 2, "community": 2,
}
#: Outer (marketing) channels and their campaigns, most frequent first (weights 3, 2, 1).
CAMPAIGNS = {
    "ad": ("new_collection", "brand_story", "spring_sale"),
    "display": ("brand_story", "new_collection", "retargeting"),
    "paid_search": ("brand_terms", "spring_sale", "new_collection"),
    "paid_social": ("new_collection", "influencer_collab", "brand_story"),
    "email": ("newsletter", "spring_sale", "loyalty"),
    "affiliate": ("partner_deals",),
}
OUTER = frozenset(CAMPAIGNS)
#: Marketing that follows a customer who has shown interest: (channel, campaign).
RETARGETING = (("display", "retargeting"), ("paid_social", "retargeting"), ("email", "abandoned_cart"))
RETARGETING_SHARE = 0.1  # of follow-up visits
NETWORKS = ("instagram", "x", "facebook", "whatsapp", "tiktok", "email")
DEFAULT_START = datetime(2026, 1, 1, tzinfo=timezone.utc)
ARRIVAL_SHARE = 0.8  # customers arrive over the first 80% of the span, so journeys can unfold


@dataclass(frozen=True)
class PathProfile:
    """How a population walks the 5A path. Probabilities are per customer, in [0, 1].

    A customer's first event makes them aware. Then exactly one of: an impulse buy
    (`impulse_buy`, aware -> act), research first (`ask_without_appeal`, aware -> ask), or
    the ordinary path: appeal with probability `appeal`; then either advocacy without buying
    (`advocate_without_buying`, appeal -> advocate, which ends the journey) or ask with
    probability `ask`. Whoever asked buys with probability `act`; a purchase is refunded
    (no act signal) with probability `refund`; a completed buyer advocates with probability
    `advocate`, or else leaves a review rated 1-3 with probability `low_review`. Each advocacy
    is one share; it brings Poisson(`referrals_per_share`) new customers, who walk the same
    profile. Steps are separated by exponential delays of mean `mean_delay_hours`; each stage
    adds Exp(`noise_events`) further same-stage events within minutes. A completed buyer keeps
    browsing with probability `browse_after_purchase`: 1-3 product views or searches within the
    next hour (no stage change: they are below act; delivered before a late purchase, they are
    what the stream has to correct).

    Identity (DESIGN.md §1c): a share `anonymous` of arriving visitors browse under a device id
    (`anonymous_id` only) until they sign in — when they start asking (an account for the cart)
    or at checkout, by an `identify` event or an event carrying both ids (half each) — and carry
    their customer id after. A share `never_sign_in` of them never do (a guest checkout carries the
    device id only); a share `second_device` also browse on a second device, anonymously, which
    they sign in on at checkout half of the time (else it stays a person of its own, as in real
    data). Half of those who browse after buying do it signed out (the device id only).
    """

    appeal: float = 0.55  # aware -> appeal
    ask: float = 0.6  # appeal -> ask
    act: float = 0.45  # ask -> act (a purchase)
    advocate: float = 0.35  # act -> advocate (completed buyers)
    impulse_buy: float = 0.04  # aware -> act directly (door knob)
    ask_without_appeal: float = 0.0  # aware -> ask directly: research first (goldfish)
    advocate_without_buying: float = 0.02  # appeal -> advocate, never buying (trumpet)
    refund: float = 0.06  # purchases refunded before anything else happens (no act signal)
    low_review: float = 0.15  # non-advocating buyers who review with rating 1-3
    referrals_per_share: float = 0.6  # mean new customers one share brings
    mean_delay_hours: float = 20.0  # mean time between steps
    noise_events: float = 1.5  # mean extra same-stage events per stage
    browse_after_purchase: float = 0.0  # completed buyers who keep browsing (product views, searches) after buying
    anonymous: float = 0.0  # visitors who browse anonymously (a device id) until they sign in
    never_sign_in: float = 0.0  # of those, the share who never sign in (guest checkout included)
    second_device: float = 0.0  # of those, the share who also browse on a second device

    PROBABILITIES: ClassVar[tuple[str, ...]] = (
        "appeal", "ask", "act", "advocate", "impulse_buy", "ask_without_appeal",
        "advocate_without_buying", "refund", "low_review", "browse_after_purchase", "anonymous", "never_sign_in",
        "second_device",
    )

    def __post_init__(self) -> None:
        for name in self.PROBABILITIES:
            value = getattr(self, name)
            if not 0.0 <= value <= 1.0:
                raise ValueError(f"{name} must be a probability in [0, 1], got {value}")
        if self.impulse_buy + self.ask_without_appeal > 1.0:
            raise ValueError("impulse_buy + ask_without_appeal must not exceed 1 (they are exclusive first steps)")
        if not 0 < self.mean_delay_hours < math.inf:
            raise ValueError(f"mean_delay_hours must be > 0, got {self.mean_delay_hours}")
        if not (0 <= self.noise_events < math.inf and 0 <= self.referrals_per_share < math.inf):
            raise ValueError("noise_events and referrals_per_share must be >= 0")
        if self.reproduction >= 1.0:
            raise ValueError(
                f"each customer would bring {self.reproduction:.2f} new customers on average (advocacy rate "
                f"x referrals_per_share >= 1): the population would grow without bound; lower one of them"
            )

    def expected_rates(self) -> dict[str, float]:
        """Expected share of customers entering each stage (before the time span cuts journeys short)."""
        rest = 1.0 - self.impulse_buy - self.ask_without_appeal
        appeal = rest * self.appeal
        fans = appeal * self.advocate_without_buying
        ask = appeal * (1 - self.advocate_without_buying) * self.ask + self.ask_without_appeal
        act = (ask * self.act + self.impulse_buy) * (1 - self.refund)
        return {"aware": 1.0, "appeal": appeal, "ask": ask, "act": act, "advocate": act * self.advocate + fans}

    @property
    def reproduction(self) -> float:
        """Mean number of new customers one customer brings (must stay below 1)."""
        return self.expected_rates()["advocate"] * self.referrals_per_share


#: Profiles whose replayed data shows Kotler's path shapes (fivea.ratios.PathMetrics.shape).
PRESETS: dict[str, PathProfile] = {
    # Durables: every stage is at most the one before.
    "funnel": PathProfile(),
    # Low-involvement goods bought on impulse: N_act > N_ask.
    "door-knob": PathProfile(appeal=0.45, ask=0.25, act=0.6, advocate=0.2, impulse_buy=0.3,
                             advocate_without_buying=0.01, refund=0.03, mean_delay_hours=8.0, noise_events=1.0),
    # Considered (B2B) purchases: many research before anything appeals, N_ask > N_appeal.
    "goldfish": PathProfile(appeal=0.35, ask=0.8, act=0.3, advocate=0.25, impulse_buy=0.01,
                            ask_without_appeal=0.4, advocate_without_buying=0.01, refund=0.04,
                            mean_delay_hours=48.0, noise_events=2.5),
    # Luxury: many admire and share without buying, N_advocate > N_act.
    "trumpet": PathProfile(appeal=0.65, ask=0.35, act=0.2, advocate=0.6, impulse_buy=0.005,
                           advocate_without_buying=0.3, refund=0.02, referrals_per_share=1.0,
                           mean_delay_hours=48.0),
}


def _iso(at: datetime) -> str:
    return at.isoformat(timespec="milliseconds").replace("+00:00", "Z")


def _weighted(rng: random.Random, options: tuple[str, ...]) -> str:
    return rng.choices(options, weights=(3, 2, 1)[: len(options)])[0]


@dataclass
class _Identity:
    """Which ids a visitor who started anonymous shows now: a device id until they sign in."""

    customer_id: str
    device: str
    signs_in: bool
    second_device: str | None = None
    signed_in: bool = False
    carry_device: bool = False  # signed in: every event carries the device id too (each one a link)
    on_second: bool = False  # the current visit is on the second device
    logged_out: bool = False  # signed in before, but this visit is not: the device id only

    def ids(self, body: dict[str, Any]) -> dict[str, Any]:
        if body.get("type") == "identify":
            return body
        body = dict(body)
        if self.on_second:
            del body["customer_id"]
            body["anonymous_id"] = self.second_device
        elif not self.signed_in or self.logged_out:
            del body["customer_id"]
            body["anonymous_id"] = self.device
        elif self.carry_device:
            body["anonymous_id"] = self.device
        return body


@dataclass
class _Sim:
    """The mutable state of one run; `customer()` schedules a whole journey into `queue`."""

    rng: random.Random
    profile: PathProfile
    brand: str
    end: datetime
    customers: int = 0
    referred: int = 0
    next_event: int = 0
    queue: list[tuple[datetime, int, dict[str, Any]]] = field(default_factory=list)
    identities: dict[str, "_Identity"] = field(default_factory=dict)  # customers who start anonymous

    def emit(self, at: datetime, body: dict[str, Any]) -> None:
        if at > self.end:
            return
        who = self.identities.get(body.get("customer_id", ""))
        if who is not None:
            body = who.ids(body)
        self.next_event += 1
        event = {
            "schema_version": 1,
            "event_id": f"e{self.next_event:09d}-{self.rng.getrandbits(32):08x}",
            "occurred_at": _iso(at),
            "brand": self.brand,
            **body,
        }
        heappush(self.queue, (at, self.next_event, event))

    def delay(self) -> timedelta:
        return timedelta(hours=self.rng.expovariate(1 / self.profile.mean_delay_hours))

    def session(self, cid: str) -> str:
        return f"s{cid}-{self.rng.getrandbits(24):06x}"

    def _start_anonymous(self, cid: str) -> _Identity | None:
        p, rng = self.profile, self.rng
        if not p.anonymous or rng.random() >= p.anonymous:
            return None
        second = f"d{cid[1:]}-2" if rng.random() < p.second_device else None
        who = self.identities[cid] = _Identity(cid, f"d{cid[1:]}-1", rng.random() >= p.never_sign_in, second)
        return who

    def sign_in(self, cid: str, at: datetime) -> None:
        """The visitor signs in (an account for the cart, or at checkout): an identify event, or ids on every event."""
        who = self.identities.get(cid)
        if who is None or who.signed_in or not who.signs_in:
            return
        who.signed_in = True
        if self.rng.random() < 0.5:
            self.emit(at, {"type": "identify", "customer_id": cid, "anonymous_id": who.device})
        else:
            who.carry_device = True
        if who.second_device and self.rng.random() < 0.5:  # signs in on the phone too, later
            self.emit(at + self.delay(), {"type": "identify", "customer_id": cid, "anonymous_id": who.second_device})

    def customer(self, arrival: datetime, referrer: str | None = None) -> None:
        self.customers += 1
        cid = f"c{self.customers:07d}"
        p, rng = self.profile, self.rng
        who = self._start_anonymous(cid)
        first: dict[str, Any] = {"type": "clickstream", "customer_id": cid, "action": rng.choice(AWARE_ACTIONS)}
        if referrer:
            self.referred += 1
            channel = rng.choice(("referral", "social", "referral"))
            first["referrer_id"] = referrer
        else:
            channel = rng.choices(list(CHANNEL_MIX), weights=list(CHANNEL_MIX.values()))[0]
        campaign = _weighted(rng, CAMPAIGNS[channel]) if channel in OUTER else None
        first["channel"] = channel
        if campaign:
            first["campaign"] = campaign
        session = first["session_id"] = self.session(cid)
        at = arrival
        self.emit(at, first)
        self._noise(cid, at, AWARE_ACTIONS, channel, session)

        def visit(actions: tuple[str, ...]) -> None:
            """A later visit, after a delay: own initiative, the arrival channel, or retargeting."""
            nonlocal at
            at += self.delay()
            body: dict[str, Any] = {"type": "clickstream", "customer_id": cid, "action": rng.choice(actions)}
            if rng.random() < RETARGETING_SHARE:
                body["channel"], body["campaign"] = rng.choice(RETARGETING)
            else:
                body["channel"] = rng.choice(("direct", "organic", "app", channel))
                if body["channel"] == channel and campaign:
                    body["campaign"] = campaign
            body["session_id"] = self.session(cid)
            body["product_id"] = f"p{rng.randint(1, 400):04d}"
            self.emit(at, body)
            self._noise(cid, at, actions, body["channel"], body["session_id"])

        first_step = rng.random()
        if first_step < p.impulse_buy:
            self._buy(cid, at)
            return
        if first_step < p.impulse_buy + p.ask_without_appeal:
            visit(RESEARCH_ACTIONS)
        else:
            if rng.random() >= p.appeal:
                return
            if who is not None and who.second_device:
                who.on_second = True  # browsing on the phone, not signed in there
            visit(APPEAL_ACTIONS)
            if who is not None:
                who.on_second = False
            if rng.random() < p.advocate_without_buying:
                self._advocate(cid, at + self.delay(), bought=False)
                return
            if rng.random() >= p.ask:
                return
            if who is not None and rng.random() < 0.5:
                self.sign_in(cid, at + self.delay() / 2)  # an account for the cart
            visit(ASK_ACTIONS)
        if rng.random() < p.act:
            self._buy(cid, at)

    def _noise(self, cid: str, at: datetime, actions: tuple[str, ...], channel: str, session: str) -> None:
        if not self.profile.noise_events:
            return
        for _ in range(int(self.rng.expovariate(1 / self.profile.noise_events))):
            at += timedelta(minutes=self.rng.expovariate(1 / 6))
            self.emit(at, {"type": "clickstream", "customer_id": cid, "action": self.rng.choice(actions),
                           "channel": channel, "session_id": session})

    def _buy(self, cid: str, at: datetime) -> None:
        rng, p = self.rng, self.profile
        at += self.delay()
        if cid in self.identities:
            self.sign_in(cid, at - timedelta(minutes=2))  # at checkout
        amount = round(rng.lognormvariate(3.5, 0.7), 2)
        purchase = {"type": "purchase", "customer_id": cid, "order_id": f"o{cid}-{rng.getrandbits(20):05x}",
                    "amount": amount, "currency": "EUR", "channel": rng.choice(("app", "direct", "organic")),
                    "items": [{"product_id": f"p{rng.randint(1, 400):04d}", "quantity": 1, "price": amount}]}
        if rng.random() < p.refund:
            # Refunded before anything else: the refund is no purchase signal.
            self.emit(at, {**purchase, "status": "refunded"})
            return
        self.emit(at, {**purchase, "status": "completed"})
        if p.browse_after_purchase and rng.random() < p.browse_after_purchase:
            later = at
            who = self.identities.get(cid)
            if who is not None and rng.random() < 0.5:
                who.logged_out = True  # back on the device without signing in: the device id only
            for _ in range(rng.randint(1, 3)):
                later += timedelta(minutes=rng.expovariate(1 / 15))
                self.emit(later, {"type": "clickstream", "customer_id": cid,
                                  "action": rng.choice(("product_view", "search", "product_view", "review_read")),
                                  "channel": rng.choice(("direct", "app", "organic")),
                                  "product_id": f"p{rng.randint(1, 400):04d}"})
            if who is not None:
                who.logged_out = False
        if rng.random() < p.advocate:
            self._advocate(cid, at + self.delay(), bought=True)
        elif rng.random() < p.low_review:
            self.emit(at + self.delay(), {"type": "share", "customer_id": cid, "kind": "review",
                                          "rating": rng.randint(1, 3), "channel": "review_site"})

    def _advocate(self, cid: str, at: datetime, *, bought: bool) -> None:
        """One share (only buyers write reviews); it may bring new customers."""
        rng, p = self.rng, self.profile
        if at > self.end:
            return
        if not bought or rng.random() < 0.5:
            body = {"type": "share", "customer_id": cid, "kind": rng.choice(("share", "recommend", "invite")),
                    "network": rng.choice(NETWORKS), "channel": "social"}
        else:
            body = {"type": "share", "customer_id": cid, "kind": "review", "rating": rng.randint(4, 5),
                    "channel": "review_site"}
        self.emit(at, body)
        for _ in range(_poisson(rng, p.referrals_per_share)):
            self.customer(at + timedelta(minutes=rng.expovariate(1 / 240)), referrer=cid)


def _poisson(rng: random.Random, mean: float) -> int:
    count, threshold, product = 0, math.exp(-mean), rng.random()
    while product > threshold:
        count += 1
        product *= rng.random()
    return count


# -- malformed records ----------------------------------------------------------------------

#: Kinds of bad records mixed in by `malformed=`; each is rejected by schemas.rejections.decode.
DEFECTS = ("truncated_json", "missing_field", "wrong_type", "naive_timestamp", "unknown_type")
_REQUIRED = {
    "clickstream": ("event_id", "customer_id", "occurred_at", "action"),
    "purchase": ("event_id", "customer_id", "occurred_at", "order_id", "amount", "currency", "status"),
    "share": ("event_id", "customer_id", "occurred_at", "kind"),
}
_UNKNOWN_TYPES = ("pageview", "order", "Clickstream", "click", "review")


def _wrong_types(doc: dict[str, Any]) -> list[tuple[str, Any]]:
    """(field, badly typed value) pairs a buggy producer might send for this event."""
    options: list[tuple[str, Any]] = [("customer_id", int(doc["customer_id"].lstrip("c")))]
    match doc["type"]:
        case "clickstream":
            options.append(("action", [doc["action"]]))
        case "purchase":
            options.append(("amount", f"{doc['amount']:.2f}".replace(".", ",") + " €"))
            options.append(("items", doc["items"][0]))
        case "share" if "rating" in doc:
            options.append(("rating", f"{doc['rating']} stars"))
    return options


def corrupt(event: dict[str, Any], defect: str, rng: random.Random) -> bytes:
    """A bad JSON line (no newline) derived from a valid event."""
    if defect == "truncated_json":
        body = orjson.dumps(event)
        return body[: rng.randint(1, len(body) - 1)]  # a JSON object's proper prefix never parses
    doc = dict(event)
    match defect:
        case "missing_field":
            del doc[rng.choice(_REQUIRED[doc["type"]])]
        case "wrong_type":
            name, value = rng.choice(_wrong_types(doc))
            doc[name] = value
        case "naive_timestamp":
            doc["occurred_at"] = doc["occurred_at"].removesuffix("Z")
        case "unknown_type":
            doc["type"] = rng.choice(_UNKNOWN_TYPES)
        case _:
            raise ValueError(f"unknown defect {defect!r}")
    return orjson.dumps(doc)


# -- the population -------------------------------------------------------------------------


class Line(NamedTuple):
    """One JSON Lines record (newline-terminated) and, for a malformed one, its defect."""

    raw: bytes
    defect: str | None = None
    type: str | None = None  # the event's type (clickstream, purchase, share); None for a malformed one


EVENT_TYPES = ("clickstream", "purchase", "share", "identify")


def parse_lag(text: str) -> tuple[str, float]:
    """`TYPE=SECONDS` (argparse type of --lag): e.g. purchase=15."""
    kind, sep, seconds = text.partition("=")
    if not sep or kind not in EVENT_TYPES:
        raise ValueError(f"{text!r}: use TYPE=SECONDS with TYPE one of {', '.join(EVENT_TYPES)} (e.g. purchase=15)")
    try:
        value = float(seconds)
    except ValueError:
        raise ValueError(f"{text!r}: {seconds!r} is not a number of seconds") from None
    if not 0 <= value < 86_400:
        raise ValueError(f"{text!r}: the lag must be between 0 and 86400 seconds")
    return kind, value


def lagged(lines: Iterable[Line], lags: dict[str, float], rate: float) -> Iterator[Line]:
    """Deliver each event type `lags[type]` seconds behind the rest, at `rate` lines per second.

    What a slower producing service does (a purchases service behind the web tracker): line i
    would go out at i / rate seconds; a line of a lagged type goes out at i / rate + lag. The
    order is decided here, deterministically; the pacer then spaces the lines at `rate`, so
    the lag is also the wall-clock delay when publishing to Kafka.
    """
    if not any(lags.values()):
        yield from lines
        return
    waiting: list[tuple[float, int, Line]] = []
    for index, line in enumerate(lines):
        due = index / rate + lags.get(line.type or "", 0.0)
        heappush(waiting, (due, index, line))
        now = index / rate
        while waiting and waiting[0][0] <= now:
            yield heappop(waiting)[2]
    while waiting:
        yield heappop(waiting)[2]


class Simulation:
    """One deterministic run: `events()` (valid dicts) or `lines()` (JSON Lines, with bad records).

    Same arguments, same output, byte for byte. `customers` arrive on their own; advocates
    bring more (`population` and `referred` count them as the run goes). Each call of
    `events()` / `lines()` starts the run afresh.
    """

    def __init__(
        self,
        customers: int,
        *,
        seed: int = 5,
        start: datetime = DEFAULT_START,
        days: float = 30,
        brand: str = "default",
        profile: PathProfile = PathProfile(),
        malformed: float = 0.0,
    ) -> None:
        if customers < 0:
            raise ValueError(f"customers must be >= 0, got {customers}")
        if not 0 < days < math.inf:
            raise ValueError(f"days must be > 0, got {days}")
        if start.tzinfo is None:
            raise ValueError("start must carry a timezone")
        if not 0.0 <= malformed < 1.0:
            raise ValueError(f"malformed must be a fraction in [0, 1), got {malformed}")
        self.arriving, self.seed, self.start, self.days = customers, seed, start, days
        self.brand, self.profile, self.malformed = brand, profile, malformed
        self._sim = self._new_sim()

    def _new_sim(self) -> _Sim:
        end = self.start + timedelta(days=self.days)
        return _Sim(random.Random(self.seed), self.profile, self.brand, end=end)

    @property
    def population(self) -> int:
        """Customers simulated so far, referred ones included."""
        return self._sim.customers

    @property
    def referred(self) -> int:
        """Customers brought by an advocate's share so far."""
        return self._sim.referred

    def events(self) -> Iterator[dict[str, Any]]:
        """Valid events in event-time order (ties in emission order)."""
        sim = self._sim = self._new_sim()
        arrivals = random.Random(f"{self.seed}/arrivals")
        span = self.days * 86_400 * ARRIVAL_SHARE
        # Every event of a customer (and of those they bring) is at or after their arrival, so
        # whatever is queued up to the next arrival is final: release it, keep memory bounded.
        for offset in sorted(arrivals.uniform(0, span) for _ in range(self.arriving)):
            arrival = self.start + timedelta(seconds=offset)
            while sim.queue and sim.queue[0][0] <= arrival:
                yield heappop(sim.queue)[2]
            sim.customer(arrival)
        while sim.queue:
            yield heappop(sim.queue)[2]

    def lines(self, segment: bool = False) -> Iterator[Line]:
        """Every event of `events()` as a JSON line (`segment`: as a Segment Spec message); before
        each, malformed records with probability `malformed` each (so that fraction of all lines
        is malformed, on average). The valid lines are the same whatever `malformed` is."""
        rng = random.Random(f"{self.seed}/malformed")
        for event in self.events():
            while self.malformed and rng.random() < self.malformed:
                defect = rng.choice(DEFECTS)
                yield Line(corrupt(event, defect, rng) + b"\n", defect)
            yield Line(to_jsonl(to_segment(event) if segment else event), type=event["type"])


# -- the Segment Spec (DESIGN.md §2b) ----------------------------------------------------------

#: Our clickstream actions as the Segment e-commerce spec's track names (page calls for pages).
SEGMENT_TRACKS = {
    "ad_impression": "Promotion Viewed", "ad_click": "Promotion Viewed", "email_open": "Email Opened",
    "product_view": "Product Viewed", "like": "Product Added to Wishlist", "wishlist_add": "Product Added to Wishlist",
    "follow": "Product Clicked", "video_view": "Product Clicked", "newsletter_signup": "Product Clicked",
    "search": "Products Searched", "review_read": "Product List Filtered", "compare": "Product List Filtered",
    "question": "Products Searched", "support_chat": "Products Searched", "add_to_cart": "Product Added",
    "cart_view": "Cart Viewed", "checkout_start": "Checkout Started", "store_visit": "Products Searched",
}
SEGMENT_PAGES = ("page_view", "landing")
#: Channels as the utm_medium a tracker would carry (the worker normalises them back).
SEGMENT_MEDIUMS = {"paid_search": "cpc", "display": "banner"}


def to_segment(event: dict[str, Any]) -> dict[str, Any]:
    """One generated event as the Segment Spec message a tracker would have sent for it."""
    message: dict[str, Any] = {"messageId": event["event_id"], "timestamp": event["occurred_at"]}
    if "customer_id" in event:
        message["userId"] = event["customer_id"]
    if "anonymous_id" in event:
        message["anonymousId"] = event["anonymous_id"]
    properties: dict[str, Any] = {}
    kind = event["type"]
    if kind == "identify":
        return {**message, "type": "identify", "traits": {}}
    if kind == "clickstream":
        action = event["action"]
        if action in SEGMENT_PAGES:
            message["type"] = "page"
        else:
            message.update(type="track", event=SEGMENT_TRACKS.get(action, action.replace("_", " ").title()))
        for name in ("product_id", "referrer_id"):
            if name in event:
                properties[name] = event[name]
    elif kind == "purchase":
        message.update(type="track", event="Order Completed" if event["status"] == "completed" else "Order Refunded")
        properties.update(order_id=event["order_id"], revenue=event["amount"], currency=event["currency"])
    else:
        review = event["kind"] == "review"
        message.update(type="track", event="Product Reviewed" if review else "Product Shared")
        if review and "rating" in event:
            properties["rating"] = event["rating"]
        if "network" in event:
            properties["share_via"] = event["network"]
    campaign: dict[str, Any] = {}
    channel = event.get("channel")
    if channel and channel != "direct":
        campaign["medium"] = SEGMENT_MEDIUMS.get(channel, channel)
    if event.get("campaign"):
        campaign["name"] = event["campaign"]
    context: dict[str, Any] = {"library": {"name": "journey generate"}}
    if campaign:
        context["campaign"] = campaign
    message.update(properties=properties, context=context)
    return message


def generate(
    customers: int,
    *,
    seed: int = 5,
    start: datetime = DEFAULT_START,
    days: float = 30,
    brand: str = "default",
    profile: PathProfile = PathProfile(),
) -> Iterator[dict[str, Any]]:
    """Valid events of `customers` arriving customers (plus those their advocates bring), in time order."""
    return Simulation(customers, seed=seed, start=start, days=days, brand=brand, profile=profile).events()


def generate_lines(customers: int, *, malformed: float = 0.0, **options: Any) -> Iterator[Line]:
    """JSON Lines of `generate(customers, **options)`, with a `malformed` fraction of bad records mixed in."""
    return Simulation(customers, malformed=malformed, **options).lines()


def to_jsonl(event: dict[str, Any]) -> bytes:
    return orjson.dumps(event) + b"\n"


def parse_start(text: str) -> datetime:
    """A CLI start time: an RFC 3339 date-time, or a date (midnight); no offset means UTC."""
    value = datetime.fromisoformat(text.replace("Z", "+00:00"))
    return value if value.tzinfo else value.replace(tzinfo=timezone.utc)


# -- output: pacing, progress, sinks --------------------------------------------------------


class Pacer:
    """Token bucket: at most `rate` events per second (None: unpaced). It sleeps in chunks of a
    few milliseconds, never spins, and keeps at most ~10 ms of unused budget, so a stall is not
    followed by a catch-up burst. `before_sleep` runs before each sleep (e.g. to flush a pipe)."""

    def __init__(
        self,
        rate: float | None,
        *,
        before_sleep: Callable[[], object] | None = None,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], object] = time.sleep,
    ) -> None:
        if rate is not None and not 0 < rate < math.inf:
            raise ValueError(f"rate must be > 0, got {rate}")
        self.rate, self.before_sleep, self.clock, self.sleep = rate, before_sleep, clock, sleep
        self.capacity = max(1.0, (rate or 0) * 0.01)
        self.slack = (rate or 0) * 0.005
        self.tokens = self.capacity
        self.stamp = clock()

    def take(self) -> None:
        if self.rate is None:
            return
        now = self.clock()
        self.tokens = min(self.capacity, self.tokens + (now - self.stamp) * self.rate) - 1
        self.stamp = now
        if self.tokens < -self.slack:
            if self.before_sleep:
                self.before_sleep()
            self.sleep(-self.tokens / self.rate)


class Progress:
    """Counts lines; every `interval` seconds prints `events, events/s` to `stream` (None: silent)."""

    def __init__(self, stream: IO[str] | None, *, interval: float = 1.0,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.stream, self.interval, self.clock = stream, interval, clock
        self.lines = self.malformed = 0
        self.started = self.last = clock()
        self.tty = bool(stream and stream.isatty())
        self.shown = 0  # length of the last \r-line on a terminal

    def add(self, line: Line) -> None:
        self.lines += 1
        if line.defect:
            self.malformed += 1
        if self.stream is None:
            return
        now = self.clock()
        if now - self.last >= self.interval:
            self.last = now
            rate = self.lines / max(now - self.started, 1e-9)
            self._print(f"generated {self.lines:,} events ({rate:,.0f}/s)", final=False)

    @property
    def elapsed(self) -> float:
        return max(self.clock() - self.started, 1e-9)

    def done(self, text: str) -> None:
        if self.stream is not None:
            self._print(text, final=True)

    def _print(self, text: str, *, final: bool) -> None:
        assert self.stream is not None
        if self.tty:
            padding = " " * max(0, self.shown - len(text))
            self.shown = 0 if final else len(text)
            print(f"\r{text}{padding}", end="\n" if final else "", file=self.stream, flush=True)
        else:
            print(text, file=self.stream, flush=True)


def write_lines(lines: Iterable[Line], out: IO[bytes], *, pacer: Pacer, progress: Progress) -> None:
    for line in lines:
        pacer.take()
        out.write(line.raw)
        progress.add(line)
    out.flush()


def publish(lines: Iterable[Line], settings: Settings, *, pacer: Pacer, progress: Progress,
            segment: bool = False) -> None:
    """Each valid line to its type's topic, each malformed one to the clickstream topic (where a
    broken producer would have sent it), keyed by customer_id when it can be read (`segment`:
    every line to the Segment topic, keyed by userId else anonymousId)."""
    from journey.produce import EventSender

    with EventSender(settings) as sender:
        if pacer.before_sleep is None:
            pacer.before_sleep = sender.flush_open  # a paced event must not wait in a batch
        for line in lines:
            pacer.take()
            value = line.raw.rstrip(b"\n")
            if segment:
                sender.send(value, None, segment=True)
            else:
                sender.send(value, settings.topic_clickstream if line.defect else None)
            progress.add(line)


__all__ = [
    "DEFAULT_START", "DEFECTS", "PRESETS", "Line", "Pacer", "PathProfile", "Progress", "Simulation", "corrupt",
    "generate", "generate_lines", "lagged", "parse_lag", "parse_start", "publish", "to_jsonl", "to_segment",
    "write_lines",
]
