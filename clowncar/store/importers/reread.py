"""Files already present: does the store hold what this importer reads from them? (`clowncar import`, and
`clowncar import --reparse` to replace what differs.)

A training log's trial id is its file's digest, so after the importer learned to read a log better the same
file is "already present" and its trials keep the old reading. `compare_present` reads each present file's
trials back from the store and names the fields where they differ from this reading; `reparse` replaces such
trials whole, one transaction per trial (`Store.replace_imported_trial`). Trials of sweeps clowncar ran are
neither compared nor replaced. What a trial's reading is: `clowncar.store.imported.TrialReading`.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from clowncar.errors import StoreError
from clowncar.store.frames import flatten
from clowncar.store.imported import TrialReading
from clowncar.store.importers import FileReport, imported_reason, provenance, where
from clowncar.store.importers.base import LegacyTrial
from clowncar.store.store import (
    EVAL_COLUMNS,
    EVAL_DEFAULTS,
    NAMED_EVAL_COLUMNS,
    NAMED_EVAL_DEFAULTS,
    STEP_COLUMNS,
    jsonable,
    utc,
)
from clowncar.words import counted

if TYPE_CHECKING:
    from clowncar.store.store import Store

_IGNORED = {"provenance.imported_from", "provenance.content_sha256"}
"""Where the file was read from is no reading of it: the same file under another path is the same trial. Nor is
the digest of its text up to line ends, which imports before it was stored lack (`same_run.py`)."""
_TABLES: dict[str, tuple[tuple[str, ...], Mapping[str, Any], int]] = {
    "steps": (STEP_COLUMNS, {}, 1), "evals": (EVAL_COLUMNS, EVAL_DEFAULTS, 3),
    "named_evals": (NAMED_EVAL_COLUMNS, NAMED_EVAL_DEFAULTS, 1)}
"""A row table's columns (its key first), the defaults the store fills in, and how many columns make the key."""


def reading_of(rep: FileReport, trial: LegacyTrial) -> TrialReading:
    """What `write` stores for `trial` of file `rep`."""
    assert rep.parsed is not None
    result = {**trial.result, "provenance": {**trial.result.get("provenance", {}), **provenance(rep)}}
    return TrialReading(config=trial.config, seed=trial.seed, status=trial.status,
                        reason=imported_reason(rep, trial), result=result,
                        started_at=utc(trial.started_at) if trial.started_at is not None else None,
                        steps=trial.steps, evals=trial.evals, named_evals=trial.named_evals)


def _flat(value: Mapping[str, Any] | None, prefix: str = "") -> dict[str, Any]:
    return {k: v for k, v in flatten(jsonable(value or {}), prefix).items() if k not in _IGNORED}


def _same(a: Any, b: Any) -> bool:
    """Equal as stored: a missing float (NaN, which SQLite keeps as NULL) is None."""
    a, b = (None if isinstance(x, float) and math.isnan(x) else x for x in (a, b))
    return bool(a == b)


def _table_rows(name: str, rows: list[dict[str, Any]]) -> list[tuple[Any, ...]]:
    """Rows as the store keeps them: its columns, its defaults, the first row of each key, in key order."""
    columns, defaults, key = _TABLES[name]
    kept: dict[tuple[Any, ...], tuple[Any, ...]] = {}
    for r in rows:
        row = tuple(r.get(c) if r.get(c) is not None else defaults.get(c) for c in columns)
        kept.setdefault(row[:key], row)
    return [kept[k] for k in sorted(kept)]


def _row_fields(name: str, stored: list[dict[str, Any]], read: list[dict[str, Any]]) -> list[str]:
    old, new = _table_rows(name, stored), _table_rows(name, read)
    if len(old) != len(new):
        return [f"{name} ({counted(len(old), 'row')} stored, {len(new)} read)"]
    return [f"{name}.{c}" for i, c in enumerate(_TABLES[name][0])
            if any(not _same(a[i], b[i]) for a, b in zip(old, new, strict=True))]


def result_differences(stored: Mapping[str, Any] | None, read: Mapping[str, Any] | None) -> list[str]:
    """The result keys (dotted) where a stored result differs from this reading's."""
    a, b = _flat(stored), _flat(read)
    return [k for k in dict.fromkeys([*b, *a]) if k not in a or k not in b or not _same(a[k], b[k])]


def differences(stored: TrialReading, read: TrialReading) -> list[str]:
    """The fields where the store's reading of a trial differs from this one: result keys (dotted), `config.*`,
    seed, status, started_at, and row tables (`named_evals.repeats`, or `steps (N rows stored, M read)`)."""
    fields = result_differences(stored.result, read.result)
    a, b = _flat(stored.config, "config."), _flat(read.config, "config.")
    fields += [k for k in dict.fromkeys([*b, *a]) if k not in a or k not in b or not _same(a[k], b[k])]
    fields += [k for k in ("seed", "status") if getattr(stored, k) != getattr(read, k)]
    if read.started_at is not None and (stored.started_at is None
                                        or abs((stored.started_at - read.started_at).total_seconds()) > 1e-3):
        fields.append("started_at")
    for name in ("steps", "evals", "named_evals"):
        fields += _row_fields(name, getattr(stored, name), getattr(read, name))
    return fields


def compare_present(store: Store, reports: list[FileReport]) -> None:
    """For every file already present, the fields where its stored trials differ from this reading
    (`rep.differs`: trial id -> fields; trials that agree, and trials clowncar ran, are left out)."""
    for rep in reports:
        if rep.status != "present" or rep.parsed is None:
            continue
        for uid, trial in zip(rep.uids, rep.parsed.trials, strict=True):
            if uid in rep.same_as:  # stored under another file's id, and found alike (`same_run.py`)
                continue
            stored = store.imported_reading(uid)
            if stored is not None and (fields := differences(stored, reading_of(rep, trial))):
                rep.differs[uid] = fields


def changed_fields(reports: list[FileReport]) -> list[str]:
    """Every differing field of these files, in the order first met."""
    return list(dict.fromkeys(f for rep in reports for fields in rep.differs.values() for f in fields))


def reparse(store: Store, reports: list[FileReport]) -> None:
    """Replace each differing trial of the present files by this reading, one transaction per trial. A file
    whose trial the store refuses is marked refused (its trials replaced before it stay replaced, each whole)."""
    for rep in reports:
        if rep.status != "present" or not rep.differs or rep.parsed is None:
            continue
        trials = dict(zip(rep.uids, rep.parsed.trials, strict=True))
        for uid in list(rep.differs):
            try:
                store.replace_imported_trial(uid, reading_of(rep, trials[uid]))
            except StoreError as err:
                rep.status, rep.reason = "refused", f"{where(rep.path)}: trial {uid} not re-read: {err}"
                break
            rep.reread += 1
        else:
            rep.status = "re-read"
