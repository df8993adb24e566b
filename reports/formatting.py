"""How figures read for people, shared by the text and HTML reports."""

from __future__ import annotations

from typing import Any

#: How a record's figures are labelled.
LABELS = {
    "par": "PAR (act / aware)",
    "bar": "BAR (advocate / aware)",
    "attraction": "attraction (appeal / aware)",
    "curiosity": "curiosity (ask / appeal)",
    "commitment": "commitment (act / ask)",
    "affinity": "affinity (advocate / act)",
    "referred": "referred new customers",
    "referring_advocates": "advocates who referred",
    "advocates": "customers entering advocate",
    "viral_coefficient": "viral coefficient (referred / advocates)",
    "referred_per_referrer": "referred per referring advocate",
}


#: What kind of figure each column of a section is, where a section mixes the two kinds.
NOTES = {
    "conversion_window": (
        "entered_in_period is a period count: everyone entering the stage in the period, whenever first seen "
        "(as above). first_seen_in_period, reached_within_window and window_conversion are funnel conversion "
        "(as PostHog and Mixpanel define it): the persons first seen in the period, and how many of them entered "
        "the stage within {window} days of their first contact (in the period or after it)."),
}


def note(key: str, window_days: int) -> str | None:
    """The section's note on which figures are period counts and which funnel conversion."""
    text = NOTES.get(key)
    return text.format(window=window_days) if text else None


def duration(ms: int | None) -> str:
    """Milliseconds for people: 850ms, 42s, 3m 20s, 5h 12m, 2d 4h."""
    if ms is None:
        return "n/a"
    seconds = ms / 1000
    if seconds < 1:
        return f"{ms}ms"
    if seconds < 60:
        return f"{seconds:.0f}s"
    minutes, secs = divmod(int(seconds), 60)
    if minutes < 60:
        return f"{minutes}m {secs}s"
    hours, minutes = divmod(minutes, 60)
    if hours < 24:
        return f"{hours}h {minutes}m"
    days, hours = divmod(hours, 24)
    return f"{days}d {hours}h"


def cell(column: str, value: Any) -> str:
    """One value of a report column: n/a, durations (`*_ms`), shares (`*_share`), 3 decimals, 1,234."""
    if isinstance(value, bool):
        return "yes" if value else ""
    if value is None:
        return "n/a"
    if column.endswith("_ms"):
        return duration(value)
    if column.endswith("_share"):
        return f"{value:.1%}"
    if isinstance(value, float):
        return f"{value:.3f}"
    if isinstance(value, int):
        return f"{value:,}"
    return value or "(none)"
