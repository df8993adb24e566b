"""The demo's live view: what the worker is doing, read from its /metrics and its chDB."""

from __future__ import annotations

import time
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass, field

from prometheus_client.parser import text_string_to_metric_families

from fivea.ratios import PathMetrics
from fivea.stages import PATH

STAGES = [stage.label for stage in PATH]


@dataclass
class Snapshot:
    at: float
    consumed: float = 0.0
    deadletters: dict[str, float] = field(default_factory=dict)
    transitions: float = 0.0
    stored: float = 0.0
    stage_counts: dict[str, int] = field(default_factory=dict)
    rate: float = 0.0  # events/s since the previous snapshot
    average: float = 0.0  # events/s from the worker's first accepted event to its latest
    produced: int = 0
    status: str = "starting"  # starting -> joining (its consumer group) -> running

    @property
    def rate_text(self) -> str:
        """What to show for the rate: the worker takes seconds to join its group before any event."""
        if self.status == "starting":
            return "worker starting"
        if self.status == "joining":
            return "worker joining its consumer group (a few seconds)"
        return f"{self.rate:,.0f} events/s now, {self.average:,.0f} on average"

    @property
    def backlog(self) -> int:
        """Events produced but not yet consumed by the worker (consumer lag)."""
        return max(0, self.produced - int(self.consumed + sum(self.deadletters.values())))

    @property
    def path(self) -> PathMetrics:
        return PathMetrics.from_counts(self.stage_counts)


def scrape_worker(metrics_url: str) -> dict[str, list[tuple[dict[str, str], float]]]:
    with urllib.request.urlopen(metrics_url, timeout=5) as response:
        text = response.read().decode()
    samples: dict[str, list[tuple[dict[str, str], float]]] = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            samples.setdefault(sample.name, []).append((sample.labels, sample.value))
    return samples


class LiveSource:
    """Takes snapshots; `stage_counts` is a query against the stored transitions."""

    def __init__(self, metrics_url: str, stage_counts: Callable[[], dict[str, int]]) -> None:
        self.metrics_url = metrics_url
        self.stage_counts = stage_counts
        self.previous: Snapshot | None = None
        self.first_at: float | None = None  # when the worker had accepted its first event
        self.last_at = 0.0  # when it had accepted its latest

    def snapshot(self, produced: int) -> Snapshot:
        now = time.monotonic()
        snap = Snapshot(at=now, produced=produced)
        try:
            samples = scrape_worker(self.metrics_url)
        except OSError:
            samples = {}
        if samples:
            owned = sum(v for _, v in samples.get("journey_assigned_partitions", []))
            snap.status = "running" if owned > 0 else "joining"
        snap.consumed = sum(
            v for labels, v in samples.get("journey_events_consumed_total", []) if labels.get("outcome") == "accepted"
        )
        for labels, value in samples.get("journey_deadletters_total", []):
            snap.deadletters[labels["reason"]] = value
        snap.transitions = sum(v for _, v in samples.get("journey_transitions_total", []))
        snap.stored = sum(v for _, v in samples.get("journey_sink_rows_total", []))
        try:
            snap.stage_counts = self.stage_counts()
        except Exception:  # noqa: BLE001 - the view keeps going while the worker starts
            snap.stage_counts = self.previous.stage_counts if self.previous else {}
        if self.previous and now > self.previous.at:
            snap.rate = max(0.0, (snap.consumed - self.previous.consumed) / (now - self.previous.at))
        if snap.consumed and self.first_at is None:
            self.first_at = self.previous.at if self.previous else now
        if snap.consumed > (self.previous.consumed if self.previous else 0):
            self.last_at = now  # the average runs from the first accepted event to the latest one
        if self.first_at is not None and self.last_at > self.first_at:
            snap.average = snap.consumed / (self.last_at - self.first_at)
        self.previous = snap
        return snap


def _ratio(value: float | None) -> str:
    return "n/a" if value is None else f"{value:.3f}"


def render(snap: Snapshot):  # -> rich renderable
    from rich.console import Group
    from rich.panel import Panel
    from rich.table import Table

    stages = Table(title="persons entering each stage", expand=True, show_edge=False)
    stages.add_column("stage")
    stages.add_column("persons", justify="right")
    stages.add_column("", ratio=1)
    widest = max(snap.stage_counts.values(), default=0) or 1
    for stage in STAGES:
        n = snap.stage_counts.get(stage, 0)
        stages.add_row(stage, f"{n:,}", "█" * round(40 * n / widest))

    path = snap.path
    ratios = Table(show_header=False, show_edge=False, expand=True)
    ratios.add_column("metric")
    ratios.add_column("value", justify="right")
    ratios.add_row("PAR (act / aware)", _ratio(path.par))
    ratios.add_row("BAR (advocate / aware)", _ratio(path.bar))
    for name, value in path.stage_ratios.items():
        ratios.add_row(name, _ratio(value))
    ratios.add_row("path shape", path.shape)

    flow = Table(show_header=False, show_edge=False, expand=True)
    flow.add_column("metric")
    flow.add_column("value", justify="right")
    flow.add_row("events/s", snap.rate_text)
    flow.add_row("events produced", f"{snap.produced:,}")
    flow.add_row("events accepted", f"{snap.consumed:,.0f}")
    flow.add_row("lag (events behind)", f"{snap.backlog:,}")
    flow.add_row("transitions stored", f"{snap.stored:,.0f}")
    dead = sum(snap.deadletters.values())
    detail = ", ".join(f"{k} {v:,.0f}" for k, v in sorted(snap.deadletters.items()) if v)
    flow.add_row("dead letters", f"{dead:,.0f}" + (f" ({detail})" if detail else ""))

    return Panel(Group(stages, ratios, flow), title="journey5a — live 5A path", subtitle="Ctrl-C stops everything")


def plain_line(snap: Snapshot) -> str:
    counts = " ".join(f"{s}={snap.stage_counts.get(s, 0):,}" for s in STAGES)
    return (
        f"      {snap.rate_text} | accepted {snap.consumed:,.0f} | lag {snap.backlog:,} | "
        f"stored {snap.stored:,.0f} | dead letters {sum(snap.deadletters.values()):,.0f} | {counts}"
    )
