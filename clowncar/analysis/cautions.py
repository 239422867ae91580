"""The cautions a report opens with: what keeps its runs' BPB from being comparable, or its title from being
what it covers (a named sweep with no finished run, runs without the metric). Each is one sentence that says
what a reader would otherwise have to find by counting rows (the unrecorded settings are in `unrecorded`)."""

from __future__ import annotations

import pandas as pd


def sweeps_without_runs(sweeps: list[str], trials: pd.DataFrame, runs: pd.DataFrame) -> list[str]:
    """Each named sweep that gives the report no finished run, with its trials by status: the title names it
    as analysed, and only the Optuna section would otherwise say it was skipped."""
    if "sweep" not in trials:
        return []
    used = set(runs["sweep"].dropna().astype(str)) if "sweep" in runs else set()
    out = []
    for sweep in sweeps:
        if sweep in used:
            continue
        rows = trials.loc[trials["sweep"].astype(str) == sweep]
        if "status" in rows:
            counts = ", ".join(f"{name} {n}" for name, n in rows["status"].astype(str).value_counts().sort_index().items())
        else:  # a frame without statuses (an importer's) still has its trials
            counts = f"{len(rows)} trials, no status recorded" if len(rows) else ""
        out.append(f"sweep {sweep} has no finished run ({counts or 'no trials'}): it contributes nothing to this "
                   "report")
    return out


def without_metric(runs: pd.DataFrame, shown: int = 5) -> list[str]:
    """Finished runs that record no value of the report's metric (a trace that ends before its last eval): every
    BPB test and table leaves them out, which a reader must not have to find by counting rows."""
    if "bpb" not in runs or runs.empty:
        return []
    gone = runs.loc[runs["bpb"].isna(), "run_id"].astype(str).tolist()
    if not gone:
        return []
    names = ", ".join(gone[:shown]) + (f" and {len(gone) - shown} more" if len(gone) > shown else "")
    return [f"{len(gone)} of {len(runs)} finished runs record no {runs.attrs.get('metric') or 'BPB'} ({names}): "
            "every BPB test and table leaves them out; the step-level tests still read their steps"]


def pooled_runs(trials: pd.DataFrame) -> list[str]:
    """What keeps BPB from being comparable across the pooled runs, when the store records it: runs imported from
    files beside runs clowncar ran (their data, hardware, length and evaluation are mostly unrecorded), or runs
    on different datasets. Every test across runs compares them as if it did not matter."""
    from clowncar.analysis.frames import finished
    from clowncar.analysis.reference import declared_runs

    trials = finished(trials)
    out = []
    sweeps = trials.groupby("source")["sweep"].nunique() if {"source", "sweep"} <= set(trials.columns) else {}
    if "import" in sweeps and "run" in sweeps:
        out.append(f"runs imported from files ({sweeps['import']} sweep(s)) are pooled with runs clowncar ran "
                   f"({sweeps['run']} sweep(s)): their data, hardware, training length and evaluation may differ, "
                   "and every test across runs compares them as if they did not")
    datasets = sorted(set(trials["data.dataset"].dropna().astype(str))) if "data.dataset" in trials else []
    if len(datasets) > 1:
        out.append(f"runs on {len(datasets)} datasets ({', '.join(datasets)}): BPB on different text is not "
                   "comparable")
    out += changed_shards(trials)
    out += wallclock_stops(trials)
    declared = declared_runs(trials)
    if declared:
        out.append(f"{declared} run(s) record no token stream, or only part of it, and are declared to share one "
                   "(--same-stream): tests 1a and 1b subtract reference runs among them as if every one read the "
                   "same tokens at each step")
    return out


WALLCLOCK_STEP_SPREAD = 0.01
"""Below this fraction of the most steps, runs stopped by their wall clock trained the same length."""


def wallclock_stops(trials: pd.DataFrame) -> list[str]:
    """Runs that reached their wall-clock cap (train.max_wallclock_seconds) before train.iterations, when the
    runs did not all train the same number of steps: their BPB then depends on how busy the machine was. Runs
    clowncar ran can be rerun at a fixed number of steps; imported logs (the challenge's records) cannot, and their
    cap is the challenge's rule, so for them the advice is to read their steps."""
    cols = ("steps", "train.iterations", "train.max_wallclock_seconds")
    if not set(cols) <= set(trials.columns):
        return []
    steps, planned, cap = (pd.to_numeric(trials[c], errors="coerce") for c in cols)
    capped = (cap > 0) & (steps < planned)
    counted = steps.dropna()
    # records of a 10-minute track stop within a few steps of each other (4909 to 4915): the cap is their rule
    if not capped.any() or counted.max() - counted.min() <= WALLCLOCK_STEP_SPREAD * counted.max():
        return []
    imported = int((capped & (trials["source"] == "import")).sum()) if "source" in trials else 0
    ran = int(capped.sum()) - imported
    head = (f"{int(capped.sum())} of {len(trials)} runs stopped at their wall-clock cap "
            f"(train.max_wallclock_seconds) before train.iterations, and the runs trained {int(counted.min())} to "
            f"{int(counted.max())} steps: their BPB depends on how busy the machine was as much as on the config; ")
    rerun = "compare at a fixed number of steps (train.max_wallclock_seconds: 0) or read the runs' steps"
    rule = ("the challenge's runs are wall-clock capped by rule: read their steps (`steps` of the runs in "
            "report.json, or `clowncar store ls SWEEP`)")
    if not imported:
        return [head + rerun]
    if not ran:
        return [head + f"they are imported logs, which clowncar cannot rerun: {rule}"]
    return [head + f"for the {ran} clowncar ran, {rerun}; the {imported} imported from logs cannot be rerun: {rule}"]


SHARD_DIGESTS = {"train": "provenance.data.train.digest", "validation": "provenance.data.val.digest"}
"""Per split, the trials-frame column of the shards a run read (`clowncar.data.shards.shards_digest`)."""


def changed_shards(trials: pd.DataFrame) -> list[str]:
    """Runs of one dataset name that read different shards: one lost, added or rebuilt between them."""
    if "data.dataset" not in trials:
        return []
    out = []
    for split, column in SHARD_DIGESTS.items():
        if column not in trials:
            continue
        sets = trials.dropna(subset=["data.dataset", column]).groupby("data.dataset")[column].nunique()
        for dataset, n in sets[sets > 1].items():
            effect = "BPB was measured on different text" if split == "validation" else "they trained on different data"
            out.append(f"runs of dataset {dataset} read {n} different sets of {split} shards (a shard lost, added or "
                       f"rebuilt between them): {effect}")
    return out
