"""What every legacy parser returns, and the error it raises for a file it cannot read whole."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from clowncar.errors import ClownCarError


class LegacyFormatError(ClownCarError):
    """A legacy file of unknown format, or one that is truncated or malformed: nothing of it is imported."""


class NotATrainingLog(LegacyFormatError):
    """A file that holds no training run we can read (a README, a submission.json, an evaluation-only log).
    A directory import skips it and says why; naming it on the command line is an error."""


@dataclass
class LegacyTrial:
    """One trial read from a legacy file. `key` is its name inside the file (run id, config label, stem)."""

    key: str
    config: dict[str, Any]
    result: dict[str, Any]
    seed: int | None = None
    status: str = "ok"
    reason: str = ""
    """Why a trial that did not finish has its status (a cut-off log's run is `crashed`); stored before where the
    trial was imported from."""
    started_at: float | None = None
    steps: list[dict[str, Any]] = field(default_factory=list)
    evals: list[dict[str, Any]] = field(default_factory=list)
    named_evals: list[dict[str, Any]] = field(default_factory=list)
    """Final / eval lines, each its own metric (see `finals.py`); the last one is the headline."""
    derived: list[str] = field(default_factory=list)
    """Dotted config keys the parser computed from values the trial stores elsewhere (the micro-crawler log's
    trigram from its parameter counts): left out of the trial's id, which digests those values already, so a
    store filled before a parser derived them still recognizes the file."""
    notes: list[str] = field(default_factory=list)
    """What the import line should say about this trial that is neither an error nor a skipped line (a trace
    with no final val_bpb, and why)."""


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
    blank_at: set[int] = field(default_factory=set)
    """Line numbers of the blank lines (where a parser records them), so that a listing of skipped lines can
    show a block of noise broken by blank lines as one block."""
    per_trial_identity: bool = False
    """True: each trial's id is its key plus a digest of its own rows (a CSV row, a RESULTS block), so a file
    that grows keeps the ids of its old trials. False: the id is the file's digest (plus the run index)."""
    unstored_fields: dict[str, int] = field(default_factory=dict)
    """Fields of step lines that have no column in the store: name -> how many lines carried it."""


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
