"""What every legacy parser returns, and the error it raises for a file it cannot read whole."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from clowncar.errors import ClownCarError


class LegacyFormatError(ClownCarError):
    """A legacy file of unknown format, or one that is truncated or malformed: nothing of it is imported."""


@dataclass
class LegacyTrial:
    """One trial read from a legacy file. `key` is its name inside the file (run id, config label, stem)."""

    key: str
    config: dict[str, Any]
    result: dict[str, Any]
    seed: int | None = None
    status: str = "ok"
    started_at: float | None = None
    steps: list[dict[str, Any]] = field(default_factory=list)
    evals: list[dict[str, Any]] = field(default_factory=list)


@dataclass
class Skipped:
    line: int
    reason: str
    text: str


@dataclass
class Parsed:
    format: str
    trials: list[LegacyTrial]
    skipped: list[Skipped] = field(default_factory=list)
    blank_lines: int = 0


def fnum(text: str) -> float | None:
    """A float from a legacy field; empty means missing (None), never zero."""
    text = text.strip().replace(",", "")
    return float(text) if text else None


def inum(text: str) -> int | None:
    value = fnum(text)
    return None if value is None else int(value)


def set_path(config: dict[str, Any], dotted: str, value: Any) -> None:
    """config["model"]["crawler_loops"] = value for "model.crawler_loops"; None values stay out."""
    if value is None:
        return
    section, key = dotted.split(".", 1)
    config.setdefault(section, {})[key] = value
