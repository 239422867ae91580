"""Exploratory views beside the signal tests: Optuna parameter importances, the Pareto front of BPB against
artifact bytes, and the top configs with their seed reruns. Nothing here is a hypothesis test."""

from __future__ import annotations

import math
import warnings
from typing import Any

import numpy as np
import pandas as pd

from clowncar.analysis.frames import complete_rows

IMPORTANCE_NOTE = ("exploratory: importances describe variance inside the region the sampler explored, carry no "
                   "uncertainty and are not causal; the seed is left out (it is a replicate, not a hyperparameter)")
SEED_PARAMS = ("train.seed", "seed")
SINGLE_RUN = "single run (n = 1): no seed repeat, its mean is one run's value"
"""The caveat of a config seen once; the table ranks it by that one value."""


def optuna_importances(storage_url: str | None, sweep: str) -> dict[str, Any]:
    """Parameter importances of the Optuna study named after the sweep, read through Optuna's API with the
    store's URL. Skipped, with the reason, when there is no such study (imported sweeps) or too few trials."""
    if not storage_url:
        return {"status": "skipped", "reason": "no storage URL"}
    import optuna  # a dependency, imported here because the report command may never need it

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    tables = _has_optuna_tables(storage_url)  # Optuna's storage creates missing tables: never write here
    if isinstance(tables, str):
        return {"status": "skipped", "reason": f"the database could not be read ({tables})"}
    if not tables:
        return {"status": "skipped", "reason": "the database holds no Optuna study tables"}
    try:
        names = optuna.get_all_study_names(storage=storage_url)
    except Exception as exc:
        return {"status": "skipped", "reason": f"the Optuna tables could not be read ({type(exc).__name__})"}
    if sweep not in names:
        return {"status": "skipped", "reason": f"no Optuna study named '{sweep}' (imported sweeps have none)"}
    try:
        study = optuna.load_study(study_name=sweep, storage=storage_url)
        done = [t for t in study.trials if t.state == optuna.trial.TrialState.COMPLETE]
        if len(study.directions) != 1:
            return {"status": "skipped", "reason": f"study '{sweep}' has {len(study.directions)} objectives: "
                                                   "importances are for one"}
        if len(done) < 2:
            return {"status": "skipped", "reason": f"{len(done)} completed trial(s) in study '{sweep}'"}
        params = sorted({p for t in done for p in t.params if p not in SEED_PARAMS})
        if not params:
            return {"status": "skipped", "reason": f"only the seed varies in study '{sweep}'"}
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            imp = optuna.importance.get_param_importances(study, params=params)
    except Exception as exc:  # importances are exploratory: report why they could not be computed
        from clowncar.redact import redact_text

        return {"status": "skipped", "reason": redact_text(f"{type(exc).__name__}: {exc}")}
    return {"status": "ok", "study": sweep, "trials": len(done), "note": IMPORTANCE_NOTE,
            "importances": {k: float(v) for k, v in imp.items()}}


def gap_mode(runs: pd.DataFrame, gap: object) -> str | None:
    """The eval mode of a row's quantization gap (one for the whole table), or None where the row has no gap."""
    return None if gap is None or pd.isna(gap) else runs.attrs.get("gap_mode")


def pareto_front(runs: pd.DataFrame) -> list[dict[str, Any]]:
    """Runs that no other run beats on both BPB and artifact bytes (lower is better on both)."""
    r = complete_rows(runs, ["bpb", "artifact_bytes"])
    if r.empty:
        return []
    r = r.sort_values(["artifact_bytes", "bpb"])
    front, best = [], math.inf
    for _, row in r.iterrows():
        if row["bpb"] < best:
            best = row["bpb"]
            front.append({"run_id": str(row["run_id"]), "label": str(row["label"]), "bpb": float(row["bpb"]),
                          "artifact_bytes": float(row["artifact_bytes"]), "width": _value(row, "width"),
                          "params": _value(row, "params"), "quant_gap": _value(row, "quant_gap"),
                          "quant_gap_mode": gap_mode(runs, _value(row, "quant_gap")), "eval_mode": runs.attrs.get("metric_mode")})
    return front


def top_configs(runs: pd.DataFrame, k: int = 10) -> list[dict[str, Any]]:
    """Configs ranked by mean BPB over their seeds, with every seed's value shown (never best-seed only), their
    width, parameter count and mean quantization gap, and the eval mode of the BPB. The seed is the unit, as in
    the seed-variance test (`seeds.seed_units`): runs of one config at one seed (a parent's trial and its rerun at
    that seed) are one value, their mean, so n, the sd and the t interval count seeds, and `seed_repeats` names
    such seeds. A config seen at one seed carries the SINGLE_RUN caveat (or ONE_SEED) wherever it ranks."""
    from scipy import stats

    from clowncar.analysis.seeds import seed_units

    r = complete_rows(runs, ["bpb"])
    mode = runs.attrs.get("metric_mode")
    units = seed_units(r)
    rows = []
    for ck, g in r.groupby("config_key"):
        u = units[units["config_key"] == ck]
        v = u["bpb"].to_numpy(float)
        repeats = [{"seed": _seed(s), "runs": len(vals)} for s, vals in zip(u["seed"], u["values"], strict=True)
                   if len(vals) > 1]
        row: dict[str, Any] = {"config": str(g["label"].iloc[0]), "config_key": str(ck), "seeds": int(v.size),
                               "runs": len(g), "mean_bpb": float(v.mean()),
                               # identical values have sd 0, not the rounding noise of their mean
                               "sd": (float(v.std(ddof=1)) if np.ptp(v) > 0 else 0.0) if v.size > 1 else None,
                               "caveat": _caveat(v.size, len(g), repeats),
                               "width": _mean(g, "width"), "params": _mean(g, "params"),
                               "quant_gap": _mean(g, "quant_gap"), "quant_gap_mode": gap_mode(runs, _mean(g, "quant_gap")),
                               "eval_mode": mode,
                               "per_seed": [{"seed": _seed(s), "bpb": float(b), "run_ids": [str(x) for x in ids],
                                             "values": [float(x) for x in vals]}
                                            for s, b, ids, vals in zip(u["seed"], v, u["run_ids"], u["values"],
                                                                       strict=True)],
                               "config_hash": sorted({str(h) for h in g["config_hash"].dropna()})}
        if repeats:
            row["seed_repeats"] = repeats
        if v.size > 1 and np.ptp(v) > 0:
            ci = stats.ttest_1samp(v, 0.0).confidence_interval()
            row.update(ci_low=float(ci.low), ci_high=float(ci.high))
        rows.append(row)
    rows.sort(key=lambda x: x["mean_bpb"])
    return rows[:k]


ONE_SEED = "one seed (n = 1), run {runs} times: no seed repeat, its mean is one seed's value"
"""The caveat of a config run more than once, always at the same seed."""


def repeats_text(repeats: list[dict[str, Any]]) -> str:
    """`seed 1337 ran 2 times, averaged into one value` for the seeds of a config that ran more than once."""
    named = ", ".join(f"seed {r['seed']} ran {r['runs']} times" for r in repeats)
    return f"{named}, {'averaged into one value' if len(repeats) == 1 else 'each averaged into one value'}"


def _caveat(seeds: int, runs: int, repeats: list[dict[str, Any]]) -> str:
    if seeds == 1:
        return SINGLE_RUN if runs == 1 else ONE_SEED.format(runs=runs)
    return repeats_text(repeats) if repeats else ""


def _value(row: pd.Series, col: str) -> float | None:
    v = row.get(col)
    return None if v is None or pd.isna(v) else float(v)


def _mean(g: pd.DataFrame, col: str) -> float | None:
    """The mean of a column over a config's runs, None when no run records it."""
    if col not in g or g[col].isna().all():
        return None
    return float(g[col].mean())


def _seed(s: Any) -> Any:
    try:
        return int(s)
    except (TypeError, ValueError):
        return None


OPTUNA_CORE_TABLES = frozenset({"studies", "trials", "version_info"})
"""Tables every Optuna RDB storage has had; used only if Optuna's table models cannot be imported."""


def optuna_tables() -> frozenset[str]:
    """Every table Optuna's RDB storage creates. Opening a database that lacks one of them through Optuna
    would create it (a report must never write), so importances are read only where all of them exist."""
    try:
        from optuna.storages._rdb.models import BaseModel  # private: where Optuna keeps its table models
    except ImportError:
        return OPTUNA_CORE_TABLES
    return frozenset(BaseModel.metadata.tables)


def _has_optuna_tables(url: str) -> bool | str:
    """Whether the database has Optuna's tables; the error's type name (never its text, which may carry the URL)
    when it cannot be read."""
    import sqlalchemy as sa

    try:
        engine = sa.create_engine(url)
        try:
            return set(sa.inspect(engine).get_table_names()) >= optuna_tables()
        finally:
            engine.dispose()
    except Exception as exc:
        return type(exc).__name__
