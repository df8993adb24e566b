"""Reading a rules file: the I/O the core leaves to its callers."""

from __future__ import annotations

from pathlib import Path

from fivea import Rules, RulesError
from journey.errors import JourneyError


def load_rules(path: Path | None) -> Rules:
    if path is None:
        return Rules.default()
    try:
        return Rules.from_toml(path.read_text(), source=str(path))
    except OSError as exc:
        raise JourneyError(f"cannot read rules file {path}: {exc.strerror}") from None
    except RulesError as exc:
        raise JourneyError(str(exc)) from None
