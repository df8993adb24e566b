"""The five A's as ordered integers, so "above" and "skip" are arithmetic."""

from __future__ import annotations

from enum import IntEnum


class Stage(IntEnum):
    NONE = 0
    AWARE = 1
    APPEAL = 2
    ASK = 3
    ACT = 4
    ADVOCATE = 5

    @property
    def label(self) -> str:
        return LABELS[self]

    @classmethod
    def parse(cls, label: str) -> "Stage":
        try:
            return cls[label.upper()]
        except KeyError:
            names = ", ".join(s.label for s in cls)
            raise ValueError(f"unknown stage {label!r} (expected one of: {names})") from None


#: Stage labels by stage number: what transitions and tables carry (cheaper than `.label` per event).
LABELS = tuple(stage.name.lower() for stage in Stage)
PATH = (Stage.AWARE, Stage.APPEAL, Stage.ASK, Stage.ACT, Stage.ADVOCATE)
