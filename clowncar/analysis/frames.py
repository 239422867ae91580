"""From the store's frames to the analysis's run table: one row per run with the quantities the tests use.

The store's trials frame has result metrics as columns and the config flattened as dotted keys
(`model.crawler_loops`). Imported legacy runs have gaps (no seed, auto-sized width, no quantization), so every
derived column is filled from whatever is present and left NaN otherwise; a test that needs a missing column
answers "not enough data" instead of failing.

Derived columns: run_id, sweep, source (run or import), config_hash, config_key (the config without the seed), start_key (see
`start_units`), label, seed, arch, width, unique_layers, loops, cadence, crawl_frac, shared, params,
artifact_bytes, bpb (the primary metric), pre_bpb, post_bpb, quant_gap, steps, git_commit, git_dirty (the
worker's checkout had uncommitted changes), warmdown_step (the first LR warm-down step) and warmdown_by (the limit
that timed it: wallclock or iterations).

Like with like: `bpb` is one result column for every run (runs without it are NaN, never filled from another
eval mode), and the quantization gap is taken in one eval mode for the whole table (standard when any run has
a standard pair, else sliding-window; no mode, None, when no run has a gap in either). `attrs` say which:
`metric`, `metric_mode`, `gap_mode`; a run without a gap has no gap mode wherever the report names one."""

from __future__ import annotations

import hashlib
import json
from typing import Any

import numpy as np
import pandas as pd

ID_COLUMNS = ("trial_uid", "run_id", "trial_id", "uid")
SEED_COLUMNS = ("train.seed", "seed")
# Post-quantization first: what a submission is scored on. The first column present for most runs wins.
PRIMARY_METRICS = ("q_sliding_val_bpb", "q_val_bpb", "sliding_val_bpb", "val_bpb")
METRIC_MODES = {"q_sliding_val_bpb": "quantized weights, sliding-window eval",
                "q_val_bpb": "quantized weights, standard eval",
                "sliding_val_bpb": "raw weights, sliding-window eval", "val_bpb": "raw weights, standard eval"}
"""How each primary metric was measured: reports say it beside the metric's name."""
OK_STATUSES = {"ok", "completed", "complete", "imported"}
RUN_COLUMNS = ("run_id", "sweep", "source", "seed", "arch", "width", "unique_layers", "loops", "cadence", "crawl_frac", "shared",
               "params", "artifact_bytes", "bpb", "pre_bpb", "post_bpb", "quant_gap", "steps", "git_commit",
               "git_dirty", "warmdown_step", "warmdown_by", "config_hash", "config_key", "start_key", "label")
COUNTS = frozenset({"seed", "width", "unique_layers", "loops", "cadence", "shared", "params", "artifact_bytes", "steps",
                    "warmdown_step", "units", "runs", "unit_runs", "n_runs", "seeds"})
"""Whole numbers of the run table and report rows: report.json writes them as ints."""
NUMERIC = {"seed", "width", "unique_layers", "loops", "cadence", "crawl_frac", "shared", "params", "artifact_bytes",
           "bpb", "pre_bpb", "post_bpb", "quant_gap", "steps", "warmdown_step"}


def _col(df: pd.DataFrame, *names: str) -> pd.Series:
    """The first of `names` present as a column (numeric where possible), else all-NaN."""
    for n in names:
        if n in df.columns:
            return df[n]
    return pd.Series(np.nan, index=df.index, dtype=float)


def _num(s: pd.Series) -> pd.Series:
    return pd.to_numeric(s, errors="coerce").astype(float)


def run_id_column(df: pd.DataFrame) -> str | None:
    return next((c for c in ID_COLUMNS if c in df.columns), None)


def choose_metric(trials: pd.DataFrame) -> str | None:
    """The primary BPB column: the earliest in PRIMARY_METRICS among those with the most values."""
    counts = {m: int(_num(trials[m]).notna().sum()) for m in PRIMARY_METRICS if m in trials.columns}
    counts = {m: c for m, c in counts.items() if c > 0}
    if not counts:
        return None
    best = max(counts.values())
    return next(m for m in PRIMARY_METRICS if counts.get(m) == best)


def _config_columns(df: pd.DataFrame) -> list[str]:
    sections = ("data.", "model.", "train.", "quant.", "eval.", "legacy.")  # legacy: a value with no clowncar key
    return [c for c in df.columns if c.startswith(sections)]


def _config_key(row: pd.Series, cols: list[str], imported_from: str | None = None) -> str:
    """A digest of the config without the seed: runs with the same key are seed reruns of one config. An imported
    run's sweep (`imported_from`: its file, or its record folder) is part of it (see `_imported_from`)."""
    skip = {"train.seed"}
    items = {c: (None if is_missing(row[c]) else row[c]) for c in cols if c not in skip}
    if isinstance(row.get("label"), str):
        items["label"] = row["label"]
    if imported_from is not None:
        items["imported_from"] = imported_from
    text = json.dumps(items, sort_keys=True, default=str)
    return hashlib.sha256(text.encode()).hexdigest()[:12]


START_COLUMNS = ("train.train_batch_tokens", "train.train_seq_len")
"""Beside the model and data sections, what fixes the batches a run sees (clowncar.analysis.reference)."""


def _imported_from(df: pd.DataFrame, sources: pd.Series, sweeps: pd.Series) -> list[str | None]:
    """Per run imported from files, the folder of its file (a record's folder holds its seeds' logs), else its
    sweep; None for a run clowncar ran. An importer records only the settings it can read, a handful of the
    dozens a record's log lists: records that agree on those (11 layers, width 512, MLP 4x) differ in the rest
    (optimizer, TTT, GPTQ, EMA), so runs of different folders are never one config or one start. Pooled as one,
    16 runs of 5 records read as seed reruns of one config, with a seed sd 20 times the records' own (walk 3,
    F23). A run clowncar ran records its whole config: where it ran stays out."""
    from pathlib import PurePath

    files = _col(df, "provenance.imported_from").astype(object).reset_index(drop=True)
    return [None if src != "import" else str(PurePath(f).parent) if isinstance(f, str) and f else str(sw)
            for src, f, sw in zip(sources.reset_index(drop=True), files, sweeps.reset_index(drop=True),
                                  strict=True)]


def _start_keys(df: pd.DataFrame, seeds: pd.Series, given: pd.Series, run_ids: pd.Series,
                imported: list[str | None]) -> list[str]:
    """Per run, a digest of what fixes its initial weights and its batches: the seed (set before the model is
    built), the model and data sections, the batch shape, an importer's label (it names differences the config
    does not record) and an imported run's sweep (`_imported_from`). A run with no seed or no model config
    recorded is its own start."""
    cols = [c for c in df.columns if c.startswith(("model.", "data.")) or c in START_COLUMNS]
    keys = []
    for (_, row), seed, label, run_id, origin in zip(df.iterrows(), seeds, given, run_ids, imported, strict=True):
        items = {c: row[c] for c in cols if not is_missing(row[c])}
        if is_missing(seed) or not any(c.startswith("model.") for c in items):
            keys.append(f"run:{run_id}")
            continue
        items |= {"seed": float(seed), "label": label if isinstance(label, str) else None}
        if origin is not None:
            items["imported_from"] = origin
        keys.append(hashlib.sha256(json.dumps(items, sort_keys=True, default=str).encode()).hexdigest()[:12])
    return keys


UNITS = ("runs with one seed and one model, which start from the same weights and see the same batches, averaged "
         "into one")
"""The method text's words for `start_units`."""


def units_of(units: int, runs: int) -> str:
    """'5 run(s)', or '3 unit(s) from 5 runs' when `start_units` merged some."""
    return f"{runs} run(s)" if units == runs else f"{units} unit(s) from {runs} runs"


def start_units(r: pd.DataFrame, by: list[str], values: list[str]) -> pd.DataFrame:
    """One row per start (`start_key`) and value of `by`, with `values` averaged and `unit_runs` counted; other
    columns from its first run.

    Runs with one seed and one model start from the same weights and see the same batches: runs that differ
    only in training settings (cadence, learning rate) move together, and a regression that counted them
    apart would be too sure of itself (in the signal demo, cadence siblings' BPB residuals correlate at about
    0.8, and a null simulation of that design rejected 3b 22% of the time at alpha 0.05: docs/signals.md).
    `by` keeps apart what a test compares when it can differ inside one start (whether the block is shared
    depends on the cadence too)."""
    own = pd.Series([f"run:{i}" for i in range(len(r))], index=r.index)
    # a table made without `run_table`: every run is its own start
    r = r.assign(start_key=r["start_key"].where(r["start_key"].notna(), own) if "start_key" in r.columns else own)
    if r.empty:
        return r.assign(unit_runs=pd.Series(dtype=int))
    keys = ["start_key", *by]
    how = {c: ("mean" if c in values else "first") for c in r.columns if c not in keys}
    grouped = r.groupby(keys, sort=False, dropna=False)
    return grouped.agg(how).reset_index().assign(unit_runs=grouped.size().to_numpy())


def is_missing(v: Any) -> bool:
    """None, NaN or pandas' NA; False for a value pd.isna takes apart element by element (a list, a tuple)."""
    try:
        return bool(pd.isna(v))
    except (TypeError, ValueError):
        return False


def complete_rows(runs: pd.DataFrame, columns: list[str]) -> pd.DataFrame:
    """The runs that have every one of `columns`; no rows at all (but every column) when one is absent."""
    if set(columns) <= set(runs.columns):
        return runs.dropna(subset=columns)
    return runs.iloc[0:0].assign(**{c: pd.Series(dtype=float) for c in columns if c not in runs.columns})


def missing(runs: pd.DataFrame, columns: list[str]) -> str:
    """' (not recorded: a, b)' for the columns that no run has, to explain a 'not enough data' verdict."""
    gone = [c for c in columns if c not in runs or runs[c].isna().all()]
    return f" (not recorded for any run: {', '.join(gone)})" if gone and len(runs) else ""


def _label(r: pd.Series) -> str:
    if is_missing(r["loops"]) and is_missing(r["unique_layers"]) and is_missing(r["width"]):
        return str(r["run_id"])
    if r["arch"] == "gpt" or (r["arch"] != "crawler" and is_missing(r["loops"])):
        base = f"{_int(r['unique_layers'])}L"
    else:
        flat = r.get("_flat")
        crawl = r.get("_crawl")
        base = (f"{_int(flat)}f+{_int(crawl)}cx{_int(r['loops'])}" if not is_missing(flat) and not is_missing(crawl)
                else f"{_int(r['unique_layers'])}x{_int(r['loops'])}")
        if not is_missing(r["cadence"]):
            base += f" cad{_int(r['cadence'])}"
    if not is_missing(r.get("_mlp")):
        base += f" mlp{float(r['_mlp']):g}"
    if not is_missing(r["width"]):
        base += f" d{_int(r['width'])}"
    return base


def _int(v: Any) -> str:
    return "?" if is_missing(v) else str(round(float(v)))


def finished(trials: pd.DataFrame) -> pd.DataFrame:
    """The trials that count as runs: an ok status (any spelling a legacy file used) or none recorded."""
    if "status" not in trials.columns:
        return trials
    return trials[trials["status"].astype(str).str.lower().isin(OK_STATUSES) | trials["status"].isna()]


def run_table(trials: pd.DataFrame) -> pd.DataFrame:
    """One row per run that finished, with the derived analysis columns (NaN where the data has a gap)."""
    if trials is None or trials.empty:
        return pd.DataFrame({c: pd.Series(dtype=float if c in NUMERIC else object) for c in RUN_COLUMNS})
    df = finished(trials.copy())
    rid = run_id_column(df)
    out = pd.DataFrame(index=df.index)
    out["run_id"] = df[rid].astype(str) if rid else [f"run{i}" for i in range(len(df))]
    out["sweep"] = _col(df, "sweep", "sweep_name").astype(object)
    out["source"] = _col(df, "source").astype(object)  # run (clowncar ran it) or import (read from files)
    out["seed"] = _num(_col(df, *SEED_COLUMNS))
    arch = _col(df, "model.arch").astype(object)
    out["arch"] = arch.where(arch.notna(), np.where(_num(_col(df, "model.crawler_loops")).notna(), "crawler", None))

    width = _num(_col(df, "model_dim"))
    cfg_width = _num(_col(df, "model.model_dim"))  # 'auto' coerces to NaN
    out["width"] = width.where(width.notna() & (width > 0), cfg_width.where(cfg_width > 0))

    flat = _num(_col(df, "model.num_flat_layers"))
    crawl = _num(_col(df, "model.num_crawler_layers"))
    layers = _num(_col(df, "model.num_layers"))
    is_gpt = out["arch"].eq("gpt")
    out["unique_layers"] = np.where(is_gpt, layers, (flat.fillna(0) + crawl).where(crawl.notna(), layers))
    loops = _num(_col(df, "model.crawler_loops"))
    # no crawler block (a flat control imported with 0 crawler layers / 0 loops): every layer runs once
    loops = loops.where(~((crawl == 0) | (loops == 0)), 1.0)
    out["loops"] = np.where(is_gpt, 1.0, loops)
    steps = _num(_col(df, "steps"))
    c_steps = _num(_col(df, "c_steps"))
    cad = _num(_col(df, "train.cadence"))
    # legacy logs record the C:N split but not the cadence: steps / C-steps recovers it (0 = never crawled)
    from_split = (steps / c_steps).round().where(c_steps > 0, np.where(c_steps == 0, 0.0, np.nan))
    cad = cad.where(cad.notna(), from_split.where(steps > 0))
    out["cadence"] = np.where(is_gpt, 0.0, cad)
    frac_cfg = np.where(out["cadence"] > 0, 1.0 / out["cadence"].where(out["cadence"] > 0), 0.0)
    frac_cfg = pd.Series(frac_cfg, index=df.index).where(out["cadence"].notna())
    out["crawl_frac"] = (c_steps / steps).where((steps > 0) & c_steps.notna(), frac_cfg)
    # Weight sharing is in use when a shared block runs more than once in a forward pass at least sometimes.
    out["shared"] = np.where(out["loops"].isna(), np.nan,
                             ((out["loops"] > 1) & (out["crawl_frac"].fillna(1.0) > 0)).astype(float))

    params = _num(_col(df, "params"))
    budget = _num(_col(df, "model.param_budget"))
    out["params"] = params.where(params > 0, budget.where(budget > 0))
    out["artifact_bytes"] = _num(_col(df, "artifact_bytes"))
    metric = choose_metric(df)
    out["bpb"] = _num(df[metric]) if metric else np.nan
    out["pre_bpb"], out["post_bpb"], out["quant_gap"], gap_mode = _quant_gap(df)
    out["steps"] = steps
    out["git_commit"] = _col(df, "git_commit", "provenance.git_commit").astype(object)
    out["git_dirty"] = _col(df, "git_dirty", "provenance.git_dirty").astype(object)
    out["warmdown_step"] = _num(_col(df, "warmdown_start_step"))
    out["warmdown_by"] = _col(df, "warmdown_set_by").astype(object)
    cfg_cols = _config_columns(df)
    out["config_hash"] = _col(df, "config_hash").astype(object)
    # A run that records no config value but its seed (a cadence TSV, a bare log) has an unknown config: it is
    # nobody's seed rerun, however equal two empty configs hash.
    recorded = df[[c for c in cfg_cols if c != "train.seed"]].notna().any(axis=1)
    imported = _imported_from(df, out["source"], out["sweep"])
    out["config_key"] = [_config_key(r, cfg_cols, origin) if known else run_id
                         for (_, r), known, run_id, origin in zip(df.iterrows(), recorded, out["run_id"], imported,
                                                                  strict=True)]
    out["_flat"], out["_crawl"] = flat.where(~is_gpt), crawl.where(~is_gpt)
    # the flat blocks' MLP width, else (no flat block, as in a fractal stack of shared blocks only) the crawler's
    flat_mlp, crawl_mlp = _num(_col(df, "model.mlp_mult")), _num(_col(df, "model.crawler_mlp_mult"))
    out["_mlp"] = flat_mlp.where(flat_mlp.notna() & (flat != 0), crawl_mlp)
    derived = [_label(r) for _, r in out.iterrows()]
    # an importer's own label names differences the config columns do not record (e.g. trigram on/off)
    given = _col(df, "label").astype(object).reset_index(drop=True)  # all NaN when no importer gave one
    out["label"] = [g if isinstance(g, str) and g else d for g, d in zip(given, derived, strict=True)]
    out["start_key"] = _start_keys(df, out["seed"], given, out["run_id"], imported)  # zipped in row order: no index needed
    out = out.drop(columns=["_flat", "_crawl", "_mlp"]).reset_index(drop=True)
    out.attrs.update(metric=metric, metric_mode=METRIC_MODES.get(metric) if metric else None, gap_mode=gap_mode)
    return out


def _quant_gap(df: pd.DataFrame) -> tuple[pd.Series, pd.Series, pd.Series, str | None]:
    """Pre- and post-quantization BPB and their gap, all in one eval mode: standard (the worker's stored
    `quant_gap` is standard) when any run has a standard pair, else sliding-window, else no mode (None: no run
    has a gap to name one for). A run measured only in the other mode gets NaN, never a gap from another mode."""
    pre, post = _num(_col(df, "val_bpb")), _num(_col(df, "q_val_bpb"))
    stored = _num(_col(df, "quant_gap"))
    gap = stored.where(stored.notna(), post - pre)
    if gap.notna().any():
        return pre.where(post.notna()), post.where(pre.notna()), gap, "standard"
    pre, post = _num(_col(df, "sliding_val_bpb")), _num(_col(df, "q_sliding_val_bpb"))
    gap = post - pre
    return pre.where(post.notna()), post.where(pre.notna()), gap, "sliding" if gap.notna().any() else None


def step_kind_table(steps: pd.DataFrame) -> pd.DataFrame:
    """Steps with a boolean `is_c` and a numeric `train_loss`, sorted by run and step; unusable rows dropped."""
    need = {"trial_uid", "step", "kind", "train_loss"}
    if steps is None or steps.empty or not need <= set(steps.columns):
        return pd.DataFrame(columns=[*need, "is_c"])
    s = steps.copy()
    s["train_loss"] = _num(s["train_loss"])
    s["step"] = _num(s["step"])
    s["kind"] = s["kind"].astype(str).str.upper().replace({"F": "C"})
    s = s[s["kind"].isin(["C", "N"]) & s["train_loss"].notna() & s["step"].notna()]
    s["is_c"] = (s["kind"] == "C").astype(float)
    s["trial_uid"] = s["trial_uid"].astype(str)
    return s.sort_values(["trial_uid", "step"]).reset_index(drop=True)


def phase_bins(s: pd.DataFrame) -> pd.Series:
    """Training phase of each step: the logged LR phase when present, else thirds of the run's steps."""
    if "phase" in s.columns and s["phase"].notna().any():
        ph = s["phase"].astype(object).where(s["phase"].notna(), "unknown")
        return ph.astype(str)
    frac = s["step"] / s.groupby("trial_uid")["step"].transform("max")
    return pd.cut(frac, [0, 1 / 3, 2 / 3, 1.0001], labels=["early", "middle", "late"]).astype(str)
