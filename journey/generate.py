"""A simulated population walking the 5A path: realistic test and demo data, deterministic by seed.

Each customer arrives through a channel, then at each stage moves on with a probability
after a random delay, sometimes skipping (impulse buys, advocates who never buy), emitting
the clickstream, purchase and share events a real customer would. Advocates' shares bring
new customers whose first event carries `referrer_id` and a referral channel, so the
network effect and the `other` influence zone have real data.
"""

from __future__ import annotations

import random
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from heapq import heappop, heappush
from typing import Any

import orjson

AWARE_ACTIONS = ("page_view", "ad_impression", "ad_click", "email_open", "landing")
APPEAL_ACTIONS = ("product_view", "like", "wishlist_add", "follow", "video_view", "newsletter_signup")
ASK_ACTIONS = ("search", "review_read", "compare", "question", "support_chat", "add_to_cart", "cart_view")
CHANNEL_MIX = {  # channel -> weight for customers not brought by a referral
    "direct": 14, "organic": 22, "app": 6, "ad": 10, "display": 6, "paid_search": 12,
    "paid_social": 8, "email": 8, "affiliate": 3, "social": 7, "review_site": 2, "community": 2,
}
OUTER = {"ad", "display", "paid_search", "paid_social", "email", "affiliate"}
CAMPAIGNS = ("spring_sale", "brand_story", "new_collection", "retargeting", "loyalty")
NETWORKS = ("instagram", "x", "facebook", "whatsapp", "tiktok", "email")


@dataclass(frozen=True)
class PathProfile:
    """Per-stage probabilities of moving on, and mean delays (hours) before doing so."""

    appeal: float = 0.55  # aware -> appeal
    ask: float = 0.6  # appeal -> ask
    act: float = 0.45  # ask -> act
    advocate: float = 0.35  # act -> advocate
    impulse_buy: float = 0.04  # aware -> act directly (door knob)
    advocate_without_buying: float = 0.02  # appeal/ask -> advocate (trumpet)
    refund: float = 0.06  # share of purchases later refunded
    low_review: float = 0.15  # share of reviews rated below 4 (an ask signal)
    referrals_per_share: float = 0.6  # mean new customers brought by one share
    mean_delay_hours: float = 20.0
    noise_events: float = 1.5  # mean extra same-stage events per stage


@dataclass
class _Sim:
    rng: random.Random
    profile: PathProfile
    brand: str
    end: datetime
    next_customer: int = 0
    next_event: int = 0
    queue: list[tuple[datetime, int, dict[str, Any]]] = field(default_factory=list)

    def event_id(self) -> str:
        self.next_event += 1
        return f"e{self.next_event:09d}-{self.rng.getrandbits(32):08x}"

    def emit(self, at: datetime, body: dict[str, Any]) -> None:
        if at <= self.end:
            body = {
                "schema_version": 1,
                "event_id": self.event_id(),
                "occurred_at": at.isoformat(timespec="milliseconds").replace("+00:00", "Z"),
                "brand": self.brand,
                **body,
            }
            heappush(self.queue, (at, self.next_event, body))

    def delay(self) -> timedelta:
        return timedelta(hours=self.rng.expovariate(1 / self.profile.mean_delay_hours))

    def customer(self, arrival: datetime, referrer: str | None = None) -> None:
        self.next_customer += 1
        cid = f"c{self.next_customer:07d}"
        p, rng = self.profile, self.rng
        if referrer:
            channel = rng.choice(("referral", "social", "referral"))
        else:
            channel = rng.choices(list(CHANNEL_MIX), weights=list(CHANNEL_MIX.values()))[0]
        session = f"s{cid}-{rng.getrandbits(24):06x}"
        first: dict[str, Any] = {"type": "clickstream", "customer_id": cid, "channel": channel,
                                 "action": rng.choice(AWARE_ACTIONS), "session_id": session}
        if referrer:
            first["referrer_id"] = referrer
        if channel in OUTER:
            first["campaign"] = rng.choice(CAMPAIGNS)
        at = arrival
        self.emit(at, first)
        self._noise(cid, at, AWARE_ACTIONS, channel)

        def click(actions: tuple[str, ...]) -> None:
            nonlocal at
            at += self.delay()
            self.emit(at, {"type": "clickstream", "customer_id": cid, "action": rng.choice(actions),
                           "channel": rng.choice(("direct", "organic", "app", channel)),
                           "product_id": f"p{rng.randint(1, 400):04d}"})
            self._noise(cid, at, actions, channel)

        if rng.random() < p.impulse_buy:
            self._buy_and_maybe_advocate(cid, at)
            return
        if rng.random() >= p.appeal:
            return
        click(APPEAL_ACTIONS)
        if rng.random() < p.advocate_without_buying:
            self._advocate(cid, at + self.delay())
            return
        if rng.random() >= p.ask:
            return
        click(ASK_ACTIONS)
        if rng.random() >= p.act:
            return
        self._buy_and_maybe_advocate(cid, at)

    def _noise(self, cid: str, at: datetime, actions: tuple[str, ...], channel: str) -> None:
        for _ in range(int(self.rng.expovariate(1 / self.profile.noise_events)) if self.profile.noise_events else 0):
            at += timedelta(minutes=self.rng.expovariate(1 / 30))
            self.emit(at, {"type": "clickstream", "customer_id": cid, "action": self.rng.choice(actions),
                           "channel": channel})

    def _buy_and_maybe_advocate(self, cid: str, at: datetime) -> None:
        rng, p = self.rng, self.profile
        at += self.delay()
        amount = round(rng.lognormvariate(3.5, 0.7), 2)
        order = f"o{cid}-{rng.getrandbits(20):05x}"
        purchase = {"type": "purchase", "customer_id": cid, "order_id": order, "amount": amount,
                    "currency": "EUR", "channel": rng.choice(("app", "direct", "organic")),
                    "items": [{"product_id": f"p{rng.randint(1, 400):04d}", "quantity": 1, "price": amount}]}
        if rng.random() < p.refund:
            # Refunded before anything else: the refund is no purchase signal.
            self.emit(at, {**purchase, "status": "refunded"})
            return
        self.emit(at, {**purchase, "status": "completed"})
        if rng.random() < p.advocate:
            self._advocate(cid, at + self.delay())
        elif rng.random() < 0.3:
            self.emit(at + self.delay(), {"type": "share", "customer_id": cid, "kind": "review",
                                          "rating": rng.randint(1, 3), "channel": "review_site"})

    def _advocate(self, cid: str, at: datetime) -> None:
        rng, p = self.rng, self.profile
        if rng.random() < 0.5:
            body = {"type": "share", "customer_id": cid, "kind": rng.choice(("share", "recommend", "invite")),
                    "network": rng.choice(NETWORKS), "channel": "social"}
        else:
            body = {"type": "share", "customer_id": cid, "kind": "review", "rating": rng.randint(4, 5),
                    "channel": "review_site"}
        self.emit(at, body)
        for _ in range(_poisson(rng, p.referrals_per_share)):
            self.customer(at + timedelta(minutes=rng.expovariate(1 / 240)), referrer=cid)


def _poisson(rng: random.Random, mean: float) -> int:
    count, threshold, product = 0, pow(2.718281828459045, -mean), rng.random()
    while product > threshold:
        count += 1
        product *= rng.random()
    return count


def generate(
    customers: int,
    *,
    seed: int = 5,
    start: datetime = datetime(2026, 1, 1, tzinfo=timezone.utc),
    days: int = 30,
    brand: str = "default",
    profile: PathProfile = PathProfile(),
) -> Iterator[dict[str, Any]]:
    """Events of `customers` arriving customers (plus those their advocates bring), in time order."""
    sim = _Sim(random.Random(seed), profile, brand, end=start + timedelta(days=days))
    for _ in range(customers):
        sim.customer(start + timedelta(seconds=sim.rng.uniform(0, days * 86_400 * 0.8)))
    while sim.queue:
        yield heappop(sim.queue)[2]


def to_jsonl(event: dict[str, Any]) -> bytes:
    return orjson.dumps(event) + b"\n"
