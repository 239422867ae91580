"""Legacy-run importers: read training logs and the Frugendorff research line's files into the store as sweeps
with source=import.

Formats (detected from the content, never from the file name):

| format | parser | one trial per |
| --- | --- | --- |
| `frugendorff-csv` | `sweep_csv` | CSV row |
| `micro-crawler-log` | `micro_log` | RESULTS block |
| `cadence-tsv` | `cadence_tsv` | file (step rows C/N, EVAL rows) |
| `training-log` | `train_log` (one line grammar: `lines.py`) | run (a file may hold several) |

Every file is parsed whole before anything is written, and each is written in its own transaction: a file is
imported whole or not at all. Trial ids come from the content: a training log's or TSV's trials are
`log-<sha256 of the file, 16 hex>` (`-run<i>` when the file holds several runs), a CSV row's or RESULTS
block's `<run id>-<digest of the trial's own rows, 12 hex>`. So the same file imported twice (under any name)
is one trial. A log that differs from a stored one only in line ends (CRLF, CR) or in white space at its end, or
whose reading equals a stored trial's apart from where it was read from, is that trial too (`same_run.py`): the
same run is never stored twice. A file whose trials are all stored already is reported as already present and
changes nothing: its trials stay in the sweep that holds them, whatever sweep this
import names (a trial is in one sweep of a store).

`scan` reads and parses every file (directories are searched) and says for each: ready, refused (with the
reason: truncated, cut off, malformed) or skipped (not a training log: a README, a submission.json, an
evaluation-only log; only inside a directory, a file named on its own is refused instead). `write` then writes
the ready ones.
"""

from __future__ import annotations

import hashlib
import json
import os
import shlex
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from clowncar.errors import StoreError
from clowncar.store.importers import cadence_tsv, micro_log, sweep_csv, train_log
from clowncar.store.importers.base import LegacyFormatError, LegacyTrial, NotATrainingLog, Parsed

if TYPE_CHECKING:
    from clowncar.store.importers.same_run import SameRun
    from clowncar.store.store import Store

__all__ = ["FileReport", "LegacyFormatError", "NotATrainingLog", "import_paths", "mark_present", "parse_file", "scan",
           "where", "write"]

FORMATS = ("frugendorff-csv", "micro-crawler-log", "cadence-tsv", "training-log")
RERUN_AS = {sweep_csv.FORMAT: sweep_csv.RERUN_AS}
"""Per format, stored config keys that mean another clowncar key when the trial runs again (`sweep rerun`)."""
_PREFIX = {"cadence-tsv": "tsv", "training-log": "log"}


@dataclass
class FileReport:
    """One file of an import and what became of it. `status`: ready (parsed, not written yet), imported,
    present (every trial already stored), re-read (present, and its differing trials replaced), refused,
    skipped."""

    path: Path
    status: str
    reason: str = ""
    parsed: Parsed | None = None
    uids: list[str] = field(default_factory=list)
    sha256: str = ""
    content_sha256: str = ""
    """Digest of the file's text up to line ends and white space at its end (`same_run.content_digest`)."""
    sweep: str = ""
    new_trials: int = 0
    steps: int = 0
    evals: int = 0
    named_evals: int = 0
    present_in: list[str] = field(default_factory=list)
    differs: dict[str, list[str]] = field(default_factory=dict)
    """Present trials whose stored values differ from this reading: trial id -> fields (`reread.py`)."""
    reread: int = 0
    """Trials replaced by this reading (`clowncar import --reparse`)."""
    same_as: dict[str, SameRun] = field(default_factory=dict)
    """Trials of this file that the store holds under another file's id: own id -> that trial (`same_run.py`)."""

    @property
    def format(self) -> str:
        return self.parsed.format if self.parsed else ""

    @property
    def trials(self) -> int:
        return len(self.parsed.trials) if self.parsed else 0


def where(path: Path) -> str:
    """The full path of a file as messages print it (quoted when it holds blanks or shell characters)."""
    return shlex.quote(os.path.abspath(path))


def _read(path: Path) -> tuple[bytes, str]:
    try:
        data = path.read_bytes()
    except OSError as err:
        raise LegacyFormatError(f"cannot read {where(path)}: {err.strerror or err}") from None
    try:
        return data, data.decode("utf-8")
    except UnicodeDecodeError as err:
        raise NotATrainingLog(f"{where(path)}: not a training log: not UTF-8 text (byte {err.start} is "
                              f"0x{data[err.start]:02x})") from None


def parse_file(path: Path, text: str | None = None, keep_cut_off: bool = False) -> Parsed:
    """Detect the format of `path` and parse it whole (LegacyFormatError when truncated or malformed,
    NotATrainingLog when it holds no run); `keep_cut_off`: see `train_log.parse`."""
    text = _read(path)[1] if text is None else text
    at = where(path)
    if not text.strip():
        raise NotATrainingLog(f"{at}: not a training log: empty file")
    if sweep_csv.detect(text):
        return sweep_csv.parse(text, at)
    if cadence_tsv.detect(text):
        return cadence_tsv.parse(text, at, path.stem)
    if micro_log.detect(text):
        return micro_log.parse(text, at)
    return train_log.parse(text, at, keep_cut_off)


def _digest(trial: LegacyTrial) -> str:
    from clowncar.store.store import jsonable

    body = {"key": trial.key, "config": _underived(trial), "result": trial.result, "seed": trial.seed,
            "steps": trial.steps, "evals": trial.evals, "named": trial.named_evals}
    return hashlib.sha256(json.dumps(jsonable(body), sort_keys=True).encode()).hexdigest()


def _underived(trial: LegacyTrial) -> dict[str, Any]:
    """The trial's config without its `derived` keys (and without a section only they filled)."""
    config: dict[str, Any] = {}
    for section, values in trial.config.items():
        if isinstance(values, dict):
            kept = {k: v for k, v in values.items() if f"{section}.{k}" not in trial.derived}
            if values and not kept:
                continue
            values = kept
        config[section] = values
    return config


def uids_of(parsed: Parsed, sha256: str) -> list[str]:
    """The trial ids of a parsed file (see the module docstring)."""
    if parsed.per_trial_identity:
        return [f"{t.key}-{_digest(t)[:12]}" for t in parsed.trials]
    base = f"{_PREFIX.get(parsed.format, 'file')}-{sha256[:16]}"
    if len(parsed.trials) == 1:
        return [base]
    return [f"{base}-run{i}" for i in range(1, len(parsed.trials) + 1)]


def _files(paths: list[Path]) -> list[tuple[Path, bool]]:
    """(file, named on its own) for every file to try; a missing path is an error before anything is read."""
    out: list[tuple[Path, bool]] = []
    for p in paths:
        if p.is_dir():
            out += [(f, False) for f in sorted(x for x in p.rglob("*") if x.is_file())]
        elif p.is_file():
            out.append((p, True))
        elif p.is_symlink() and not p.exists():  # a dangling link, or one in a loop
            raise LegacyFormatError(f"{where(p)} is a symbolic link to nothing readable (dangling or a loop)")
        elif p.exists():  # a FIFO, socket or device: reading one may never end
            raise LegacyFormatError(f"{where(p)} is not a regular file or a directory")
        else:
            raise LegacyFormatError(f"no such file or directory: {where(p)}")
    return out


def scan(paths: list[Path], keep_cut_off: bool = False) -> list[FileReport]:
    """Read and parse every file (directories searched, in path order): one report per file."""
    reports = []
    for path, named in _files(paths):
        try:
            data, text = _read(path)
            parsed = parse_file(path, text, keep_cut_off)
        except NotATrainingLog as err:
            status = "refused" if named else "skipped"
            detail = f" (expected one of: {', '.join(FORMATS)})" if named else ""
            reports.append(FileReport(path, status, str(err) + detail))
            continue
        except LegacyFormatError as err:
            reports.append(FileReport(path, "refused", str(err)))
            continue
        from clowncar.store.importers.same_run import content_digest

        sha = hashlib.sha256(data).hexdigest()
        reports.append(FileReport(path, "ready", parsed=parsed, uids=uids_of(parsed, sha), sha256=sha,
                                  content_sha256=content_digest(text)))
    return reports


def _folders(path: Path) -> tuple[str, ...]:
    """The folders above a file, from the root down (the root itself left out): what sweep names qualify with."""
    return Path(os.path.abspath(path)).parent.parts[1:]


def default_sweeps(paths: list[Path]) -> dict[Path, str]:
    """One sweep per file, named after it: its stem, and where files of one import share a stem (every record
    folder of the challenge holds a `train_seed1337.log`), the stem behind as many of its folders as tell them
    apart, joined by dots (`2026-04-30_Random_Linear_Adapter.train_seed1337`): never one sweep of unrelated runs."""
    parts = {p: _folders(p) for p in paths}
    in_folder = Counter((parts[p], p.stem) for p in paths)
    base = {p: p.name if in_folder[parts[p], p.stem] > 1 else p.stem for p in paths}  # train.log beside train.txt
    names = {p: p.stem for p in paths}
    for depth in range(1, max((len(x) for x in parts.values()), default=0) + 1):
        seen = Counter(names.values())
        clashing = [p for p in paths if seen[names[p]] > 1]
        if not clashing:
            break
        for p in clashing:
            names[p] = ".".join([*parts[p][-depth:], base[p]])
    return names


def provenance(rep: FileReport) -> dict[str, str]:
    """Where an imported trial came from, stored in its result."""
    return {"imported_from": os.path.abspath(rep.path), "file_sha256": rep.sha256,
            "content_sha256": rep.content_sha256, "format": rep.format}


def imported_reason(rep: FileReport, trial: LegacyTrial) -> str:
    """The stored reason of an imported trial: why it did not finish, if it did not, and where it came from."""
    origin = f"imported from {os.path.abspath(rep.path)}"
    return f"{trial.reason}; {origin}" if trial.reason else origin


def _write_one(store: Store, rep: FileReport, sweep: str) -> None:
    parsed = rep.parsed
    assert parsed is not None
    rep.sweep = sweep
    with store.transaction():
        stored = _stored_trials(store, rep)
        if rep.status == "present":
            return
        store.create_or_get_sweep(rep.sweep, {"imported": True, "format": parsed.format}, source="import")
        number = len(store.trial_states(rep.sweep))
        for uid, trial in zip(rep.uids, parsed.trials, strict=True):
            if uid in stored or uid in rep.same_as:
                continue  # a file that grew: its old trials are already there; or the same run from another file
            trial.result.setdefault("provenance", {}).update(provenance(rep))
            store.start_trial(rep.sweep, uid, number, 0, trial.config, trial.seed, None,
                              started_at=trial.started_at)
            number += 1
            store.add_steps(uid, 0, trial.steps)
            store.add_evals(uid, 0, trial.evals)
            store.add_named_evals(uid, 0, trial.named_evals)
            store.finish_trial(uid, 0, trial.status, imported_reason(rep, trial), trial.result,
                               ended_at=trial.started_at)
            rep.new_trials += 1
            rep.steps += len(trial.steps)
            rep.evals += len(trial.evals)
            rep.named_evals += len(trial.named_evals)
        store.set_sweep_status(rep.sweep, "imported")
        rep.status = "imported"


def write(store: Store, reports: list[FileReport], sweep: str | None = None, keep_going: bool = False) -> None:
    """Write every ready file, each in its own transaction. A file the store refuses (a trial id stored with
    another config) is marked refused; without `keep_going` the files after it are left unwritten. A `sweep`
    that clowncar ran is refused before anything is written: an imported trial there would sit outside the
    sweep's Optuna study and turn the sweep's status to `imported` (default names keep clear of such sweeps)."""
    names = {rep.path: sweep for rep in reports} if sweep else _default_targets(store, reports)
    ran = {name for name in set(names.values()) if (found := store.get_sweep(name)) and found["source"] != "import"}
    for rep in reports:
        if rep.status == "ready" and names[rep.path] in ran:
            rep.status, rep.reason = "refused", (
                f"{where(rep.path)}: sweep {names[rep.path]!r} is a sweep clowncar ran, not an import: its trials "
                "come from its own Optuna study; import into another sweep with --sweep NAME")
    if not keep_going and any(rep.status == "refused" for rep in reports):
        mark_present(store, reports)
        return
    for rep in reports:
        if rep.status != "ready":
            continue
        try:
            _write_one(store, rep, names[rep.path])
        except StoreError as err:
            rep.status, rep.reason = "refused", f"{where(rep.path)}: {err}"
            rep.new_trials = rep.steps = rep.evals = rep.named_evals = 0
            if not keep_going:
                mark_present(store, reports)
                return


def mark_present(store: Store, reports: list[FileReport]) -> None:
    """Mark as present the files left unwritten (an import stopped by a refusal) whose trials are all stored
    already, with the sweeps that hold them: they are not "not written" but there, and stay there."""
    for rep in reports:
        if rep.status == "ready":
            _stored_trials(store, rep)


def _stored_trials(store: Store, rep: FileReport) -> dict[str, str]:
    """{own id: sweep} of the trials of `rep` stored under their own ids; the others that the store holds as the
    same run from another file go to `rep.same_as`. A file with every trial held is marked present."""
    from clowncar.store.importers.same_run import find_same_runs

    stored = store.trial_sweeps(rep.uids)
    find_same_runs(store, rep, stored)
    if len(stored) + len(rep.same_as) == len(rep.uids):
        rep.status = "present"
        rep.present_in = sorted(set(stored.values()) | {m.sweep for m in rep.same_as.values()})
    return stored


def _default_targets(store: Store, reports: list[FileReport]) -> dict[Path, str]:
    """Each file's default sweep, kept clear of sweeps that are not its own: a name that a sweep clowncar ran,
    or another file's imported trials, already hold (an earlier import of another record's `train_seed1337.log`)
    takes as many more of the file's folders as make it free."""
    names = default_sweeps([rep.path for rep in reports])
    used: set[str] = set()
    for rep in reports:
        if rep.status == "ready":
            names[rep.path] = next((n for n in _candidates(rep.path, names[rep.path])
                                    if n not in used and not _held_by_others(store, n, rep.path)), names[rep.path])
            used.add(names[rep.path])
    return names


def _candidates(path: Path, name: str) -> list[str]:
    base = path.name if name.endswith(path.name) else path.stem
    folders = _folders(path)
    deeper = [".".join([*folders[-depth:], base]) for depth in range(1, len(folders) + 1)]
    return list(dict.fromkeys([name, *deeper]))


def _held_by_others(store: Store, name: str, path: Path) -> bool:
    found = store.get_sweep(name)
    if found is None:
        return False
    if found["source"] != "import":
        return True
    frame = store.trials_frame(name)
    column = "provenance.imported_from"
    sources = set(frame[column].dropna()) if column in frame.columns else set()
    return len(frame) > 0 and os.path.abspath(path) not in sources


def import_paths(store: Store, paths: list[Path], sweep: str | None = None,
                 keep_going: bool = False, keep_cut_off: bool = False) -> list[FileReport]:
    """`scan` then `write`. Without `keep_going`, a refused file stops the import before anything is written
    (LegacyFormatError with its reason); with it the other files are written and the refused ones reported."""
    reports = scan(paths, keep_cut_off)
    refused = [r for r in reports if r.status == "refused"]
    if refused and not keep_going:
        raise LegacyFormatError(refused[0].reason)
    write(store, reports, sweep, keep_going)
    return reports
