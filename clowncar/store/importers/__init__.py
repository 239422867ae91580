"""Legacy-run importers: read the Frugendorff research line's files into the store as sweeps with source=import.

Formats (detected from the content, never from the file name):

| format | parser | one trial per |
| --- | --- | --- |
| `frugendorff-csv` | `sweep_csv` | CSV row |
| `micro-crawler-log` | `micro_log` | RESULTS block |
| `cadence-tsv` | `cadence_tsv` | file (step rows C/N, EVAL rows) |
| `train-gpt-log` | `train_log` | file (step rows, eval rows, final round-trip BPB) |

Every file is parsed whole before anything is written, and written in one transaction: a truncated or unknown
file raises `LegacyFormatError` and leaves nothing behind. Trial uids are `<file stem>/<key>` (the key is the
run id, config log name or the stem itself), so importing the same file again adds nothing; a changed file
whose trials already exist with another config is refused.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

from clowncar.store.importers import cadence_tsv, micro_log, sweep_csv, train_log
from clowncar.store.importers.base import LegacyFormatError, Parsed, Skipped

if TYPE_CHECKING:
    from clowncar.store.store import Store

__all__ = ["FileReport", "LegacyFormatError", "Prepared", "import_paths", "parse_file", "prepare", "write_prepared"]

FORMATS = ("frugendorff-csv", "micro-crawler-log", "cadence-tsv", "train-gpt-log")


@dataclass
class FileReport:
    path: Path
    format: str
    sweep: str
    trials: int
    new_trials: int
    steps: int
    evals: int
    skipped: list[Skipped] = field(default_factory=list)
    blank_lines: int = 0


def read_text(path: Path) -> str:
    try:
        data = path.read_bytes()
    except OSError as err:
        raise LegacyFormatError(f"cannot read {path}: {err.strerror or err}") from None
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError:
        raise LegacyFormatError(f"{path}: unknown format (not UTF-8 text)") from None


def parse_file(path: Path, text: str | None = None) -> Parsed:
    """Detect the format of `path` and parse it whole (LegacyFormatError when unknown or truncated)."""
    text = read_text(path) if text is None else text
    name, stem = path.name, path.stem
    if not text.strip():
        raise LegacyFormatError(f"{name}: empty file")
    if sweep_csv.detect(text):
        return sweep_csv.parse(text, name)
    if cadence_tsv.detect(text):
        return cadence_tsv.parse(text, name, stem)
    if micro_log.detect(text):
        return micro_log.parse(text, name)
    if train_log.detect(text):
        return train_log.parse(text, name, stem)
    raise LegacyFormatError(f"{name}: unknown format (expected one of: {', '.join(FORMATS)})")


def _expand(paths: list[Path]) -> tuple[list[Path], list[Path]]:
    """Files to import, and files of a given directory that are not legacy runs (skipped, not errors)."""
    files, others = [], []
    for p in paths:
        if p.is_dir():
            for f in sorted(x for x in p.rglob("*") if x.is_file()):
                try:
                    parse_file(f)
                except LegacyFormatError as err:
                    if "unknown format" not in str(err) and "empty file" not in str(err):
                        raise
                    others.append(f)
                    continue
                files.append(f)
        elif p.is_file():
            files.append(p)
        else:
            raise LegacyFormatError(f"no such file or directory: {p}")
    return files, others


def _write(store: Store, path: Path, parsed: Parsed, text: str, sweep: str | None) -> FileReport:
    sha = hashlib.sha256(text.encode()).hexdigest()
    name = sweep or path.stem
    report = FileReport(path, parsed.format, name, len(parsed.trials), 0, 0, 0, parsed.skipped,
                        parsed.blank_lines)
    with store.transaction():
        store.create_or_get_sweep(name, {"imported": True, "format": parsed.format}, source="import")
        existing = store.trial_states(name)
        number = len(existing)
        for trial in parsed.trials:
            uid = f"{path.stem}/{trial.key}" if trial.key != path.stem else path.stem
            if uid not in existing:
                report.new_trials += 1
            trial.result.setdefault("provenance", {}).update(
                {"imported_from": path.name, "file_sha256": sha, "format": parsed.format})
            store.start_trial(name, uid, number, 0, trial.config, trial.seed, None, started_at=trial.started_at)
            number += uid not in existing
            store.add_steps(uid, 0, trial.steps)
            store.add_evals(uid, 0, trial.evals)
            store.finish_trial(uid, 0, trial.status, f"imported from {path.name}", trial.result,
                               ended_at=trial.started_at)
            report.steps += len(trial.steps)
            report.evals += len(trial.evals)
        store.set_sweep_status(name, "imported")
    return report


@dataclass
class Prepared:
    """Files parsed whole and ready to write, and the files of given directories that are not runs."""

    files: list[tuple[Path, Parsed, str]]
    others: list[Path]


def prepare(paths: list[Path]) -> Prepared:
    """Read and parse every file (directories are searched); any unknown, truncated or missing file raises
    LegacyFormatError before anything is written."""
    files, others = _expand(paths)
    parsed = []
    for f in files:
        text = read_text(f)
        parsed.append((f, parse_file(f, text), text))
    return Prepared(parsed, others)


def write_prepared(store: Store, prepared: Prepared, sweep: str | None = None) -> list[FileReport]:
    """Write each parsed file in its own transaction."""
    return [_write(store, f, p, text, sweep) for f, p, text in prepared.files]


def import_paths(store: Store, paths: list[Path], sweep: str | None = None) -> tuple[list[FileReport], list[Path]]:
    """`prepare` then `write_prepared`: the per-file reports and the skipped non-run files."""
    prepared = prepare(paths)
    return write_prepared(store, prepared, sweep), prepared.others
