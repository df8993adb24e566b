"""Kotler's ratios and path shape from the number of customers entering each stage."""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass

from fivea.stages import PATH, Stage


def ratio(numerator: int, denominator: int) -> float | None:
    """None (shown as n/a) when the denominator is zero."""
    return numerator / denominator if denominator else None


@dataclass(frozen=True)
class PathMetrics:
    aware: int
    appeal: int
    ask: int
    act: int
    advocate: int

    @classmethod
    def from_counts(cls, counts: Mapping[str, int] | Mapping[Stage, int]) -> "PathMetrics":
        def get(stage: Stage) -> int:
            return int(counts.get(stage, counts.get(stage.label, 0)))  # type: ignore[call-overload]

        return cls(*(get(stage) for stage in PATH))

    @property
    def par(self) -> float | None:
        """Purchase action ratio: act / aware."""
        return ratio(self.act, self.aware)

    @property
    def bar(self) -> float | None:
        """Brand advocacy ratio: advocate / aware."""
        return ratio(self.advocate, self.aware)

    @property
    def stage_ratios(self) -> dict[str, float | None]:
        return {
            "attraction": ratio(self.appeal, self.aware),
            "curiosity": ratio(self.ask, self.appeal),
            "commitment": ratio(self.act, self.ask),
            "affinity": ratio(self.advocate, self.act),
        }

    @property
    def shape(self) -> str:
        """Kotler's archetype, checked in DESIGN.md §1 order."""
        if self.advocate > self.act:
            return "trumpet"
        if self.ask > self.appeal:
            return "goldfish"
        if self.act > self.ask:
            return "door knob"
        counts = [self.aware, self.appeal, self.ask, self.act, self.advocate]
        if all(later <= earlier for earlier, later in zip(counts, counts[1:])):
            return "funnel"
        return "mixed"

    @property
    def bow_tie_distance(self) -> float | None:
        """0 for the ideal bow tie (advocate ≈ aware, act ≈ appeal); grows as the path leaks.

        Euclidean distance of (1 - advocate/aware, 1 - act/appeal), each term clamped to
        [0, 1]; None when there is nobody aware.
        """
        if not self.aware:
            return None
        leak_advocacy = min(1.0, max(0.0, 1 - self.advocate / self.aware))
        leak_action = min(1.0, max(0.0, 1 - (self.act / self.appeal if self.appeal else 0.0)))
        return math.hypot(leak_advocacy, leak_action)
