"""The sweep and label beside a run id in the per-run tables of tests 1a and 1b. An id (`tsv-b949686c7e521aee`, a
trial uid) tells a reader nothing: which of the analysed sweeps a row is, and what config it ran, is what the
reader compares the rows by (walk 6, F12)."""

from __future__ import annotations

from typing import Any

import pandas as pd

from clowncar.analysis.result import TestResult

RUN_TABLES = ("within_run_hac", "reference_runs", "per_run")
"""The tables with one row per run, keyed by its id in `run` (and, in reference_runs, its reference's id)."""


def run_names(trials: pd.DataFrame | None) -> dict[str, tuple[str | None, str | None]]:
    """Run id -> (its sweep, its label): the label the run table gives it (the importer's own, else one made of
    its shape, `3x2 cad2 d256`), or None where that is only the id again (a trace that records no shape) or the run
    did not finish (the run table holds finished runs only; a failed run's steps still feed the step tests)."""
    from clowncar.analysis.frames import run_id_column, run_table

    rid = run_id_column(trials) if trials is not None else None
    if trials is None or trials.empty or rid is None:
        return {}
    sweeps = trials["sweep"] if "sweep" in trials else pd.Series(None, index=trials.index, dtype=object)
    names: dict[str, tuple[str | None, str | None]] = {
        str(run): (str(sweep) if isinstance(sweep, str) else None, None)
        for run, sweep in zip(trials[rid], sweeps, strict=True)}
    runs = run_table(trials)
    for run, label in zip(runs["run_id"].astype(str), runs["label"], strict=True):
        if isinstance(label, str) and label and label != run:
            names[run] = (names.get(run, (None, None))[0], label)
    return names


def name_runs(results: list[TestResult], trials: pd.DataFrame | None) -> list[TestResult]:
    """`results` with `sweep` and `label` after each per-run table's `run` (and `reference_sweep` after a
    reference's id), in place; unchanged without a trials frame to read the names from."""
    names = run_names(trials)
    if not names:
        return results
    for res in results:
        for table in RUN_TABLES:
            if table in res.tables:
                res.tables[table] = [_named(row, names) for row in res.tables[table]]
    return results


def _named(row: dict[str, Any], names: dict[str, tuple[str | None, str | None]]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key, value in row.items():
        out[key] = value
        if key == "run":
            out["sweep"], out["label"] = names.get(str(value), (None, None))
        elif key == "reference":
            out["reference_sweep"] = names.get(str(value), (None, None))[0]
    return out
