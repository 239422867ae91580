"""One run, two files: a training log (or cadence TSV) whose trial the store holds already under another file's id.

A file's trials are named after the digest of its bytes (`uids_of`), so a copy of a log that an editor gave a
final newline, that git checked out with CRLF line ends, or that was copied again with a trailing blank line, is
a new trial id for a run the store holds: counted in a report it would be a duplicate run with zero spread.
Before `write` stores a trial under a new id it asks here whether the store holds the same run:

- every import stores `provenance.content_sha256`, the digest of the file's text with its line ends made LF and
  the white space at its end removed: a stored trial with this digest (and the same run index) is the same run;
- a trial imported before that digest was stored is the same run when its whole reading (config, seed, status,
  start time, result, step, eval and named-eval rows: `reread.differences`) equals this one apart from where
  it was read from.

Candidates are the imported trials whose `steps` metric equals this trial's (one indexed look-up,
`Store.imported_with_metric`); only those whose result also agrees are read back whole. Trial ids of files
already stored never change: the same file is found by its own id first, as before.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from clowncar.store.importers.reread import differences, reading_of, result_differences

if TYPE_CHECKING:
    from clowncar.store.importers import FileReport
    from clowncar.store.store import Store

_WHERE_READ = {"provenance.file_sha256"}
"""Fields that say which bytes a trial was read from, not what was read (`imported_from` and `content_sha256`
are left out by `reread` already)."""
LINE_ENDS = "the files differ only in line ends or in white space at their end"
SAME_READING = "read alike: the same config, result, step, eval and named-eval rows"


@dataclass(frozen=True)
class SameRun:
    """The stored trial that one trial of a new file is the same run as, and how that was found."""

    uid: str
    sweep: str
    why: str


def content_digest(text: str) -> str:
    """sha256 of a file's text with CRLF and CR line ends made LF and the white space at its end removed."""
    return hashlib.sha256(text.replace("\r\n", "\n").replace("\r", "\n").rstrip().encode()).hexdigest()


def _run_of(result: dict[str, Any] | None) -> Any:
    return ((result or {}).get("provenance") or {}).get("run")


def find_same_runs(store: Store, rep: FileReport, stored: dict[str, str]) -> None:
    """Fill `rep.same_as` (this file's trial id -> SameRun) for its trials not stored under their own ids
    (`stored`: own id -> sweep). Only files whose ids digest the file are looked at: a CSV row's or RESULTS
    block's id digests its own reading already."""
    if rep.parsed is None or rep.parsed.per_trial_identity:
        return
    taken = set(stored) | {m.uid for m in rep.same_as.values()}
    for uid, trial in zip(rep.uids, rep.parsed.trials, strict=True):
        if uid in stored or uid in rep.same_as:
            continue
        steps = trial.result.get("steps")
        if not isinstance(steps, int | float) or isinstance(steps, bool):
            continue
        read = reading_of(rep, trial)
        for other, sweep, result in store.imported_with_metric("steps", steps):
            if other in taken:
                continue
            why = _alike(store, other, result, read, rep.content_sha256)
            if why:
                rep.same_as[uid] = SameRun(other, sweep, why)
                taken.add(other)
                break


def _alike(store: Store, other: str, result: dict[str, Any] | None, read: Any, digest: str) -> str:
    """Why stored trial `other` (with `result`) is the same run as reading `read` of a file whose text has
    `digest`; "" when it is not."""
    provenance = (result or {}).get("provenance") or {}
    if digest and provenance.get("content_sha256") == digest and _run_of(result) == _run_of(read.result):
        return LINE_ENDS
    if [f for f in result_differences(result, read.result) if f not in _WHERE_READ]:
        return ""
    stored = store.imported_reading(other)
    if stored is None or [f for f in differences(stored, read) if f not in _WHERE_READ]:
        return ""
    return SAME_READING
