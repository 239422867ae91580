"""Tests 5 and 6: weight sharing at matched parameter count, and seed variance per config."""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import pandas as pd

from clowncar.analysis.frames import UNITS, complete_rows, missing, start_units
from clowncar.analysis.result import DESCRIPTIVE, TestResult, decide, not_enough
from clowncar.analysis.runlevel import seed_block
from clowncar.analysis.stats import coef, coef_table, mde_from_se, mde_two_sample, ols, unusable

PARAM_TOL = 0.10  # runs whose parameter counts differ by less than 10% count as matched
SHARE_MARGIN = 0.002

SCOPE = (
    "What this data can show: whether shared-weight models (a block looped more than once) reach a different "
    "BPB than unshared models of about the same parameter count, on the same data and schedule. What it cannot "
    "show: that a difference is regularization. Training never repeats data (one pass over billions of tokens), "
    "so a train/val gap does not measure overfitting; shared models also spend more compute per token, so a "
    "matched-parameter difference mixes extra compute with any regularizing effect. A real overfitting test needs "
    "deliberate data repetition (several epochs over a small subset).")


def _strata(params: pd.Series) -> pd.Series:
    """Group runs whose parameter counts lie within PARAM_TOL of the smallest in the group."""
    order = params.sort_values()
    labels, start, k = {}, None, -1
    for idx, p in order.items():
        if start is None or p > start * (1 + PARAM_TOL):
            start, k = p, k + 1
        labels[idx] = k
    return pd.Series(labels).reindex(params.index)


def sharing_test(runs: pd.DataFrame) -> TestResult:
    key, title = "5_sharing_matched_params", "Weight sharing at matched parameter count"
    q = "At matched parameter count, do shared-weight models reach a different BPB than unshared ones?"
    need = ["bpb", "shared", "params"]
    runs_r = complete_rows(runs, need)
    runs_r = runs_r.assign(stratum=_strata(runs_r["params"]))
    # strata holding shared and unshared runs
    runs_r = runs_r[runs_r.groupby("stratum")["shared"].transform("nunique") > 1]
    r = start_units(runs_r, ["shared", "stratum"], ["bpb"])
    formula = "bpb ~ shared" + (" + C(stratum)" if r["stratum"].nunique() > 1 else "") + seed_block(r)
    method = (f"OLS {formula}, HC3, one row per unit ({UNITS}); runs matched when parameter counts differ by < "
              f"{PARAM_TOL:.0%}; effect = shared minus unshared BPB")
    n_sh, n_un = int((r["shared"] == 1).sum()), int((r["shared"] == 0).sum())
    base = {"n_runs": len(runs_r), "runs": runs_r["run_id"].tolist(),
            "extra": {"scope": SCOPE, "shared_runs": int((runs_r["shared"] == 1).sum()),
                      "unshared_runs": int((runs_r["shared"] == 0).sum()), "units": len(r)}}
    if n_sh < 2 or n_un < 2:
        what = "run(s)" if len(r) == len(runs_r) else "unit(s)"
        return not_enough(key, title, q, method,
                          f"{n_sh} shared and {n_un} unshared {what} at matched parameter count (>= 2 each "
                          f"needed){missing(runs, need)}", **base)
    fit = ols(formula, r)
    unfit = unusable(fit)
    if unfit:
        return not_enough(key, title, q, method, f"{formula}: {unfit}", **base)
    c = coef(fit, "shared")
    res = TestResult(key=key, title=title, question=q, method=method, effect=c["estimate"], ci_low=c["ci_low"],
                     ci_high=c["ci_high"], p_value=c["p"], margin=SHARE_MARGIN,
                     mde=mde_from_se(c["se"], fit.df_resid), tables={"coefficients": coef_table(fit)}, **base)
    if "quant_gap" in runs_r and runs_r["quant_gap"].notna().sum() >= 4:
        res.tables["quant_gap_by_sharing"] = [
            {"shared": bool(s), "runs": int(g["quant_gap"].notna().sum()), "mean_quant_gap": float(g["quant_gap"].mean())}
            for s, g in runs_r.groupby("shared")]
    return decide(res)


def seed_units(r: pd.DataFrame) -> pd.DataFrame:
    """One row per (config, seed): the unit of seed replication. Runs of one config that record the same seed are
    one seed measured again (their spread is run-to-run noise, or a difference the config does not record, never
    seed variance), so they are averaged into one value; a run that records no seed is its own unit. Every summary
    of a config over its seeds (this test, the report's top-configs table) counts these rows, not runs."""
    r = r.assign(seed=r.get("seed", np.nan))
    r = r.assign(_seed_unit=[_seed_key(s, u) for s, u in zip(r["seed"], r["run_id"], strict=True)])
    grouped = r.groupby(["config_key", "_seed_unit"], sort=False)
    units = grouped.agg(bpb=("bpb", "mean"), seed=("seed", "first"), label=("label", "first")).reset_index()
    units["run_ids"] = grouped["run_id"].agg(list).to_numpy()
    units["values"] = grouped["bpb"].agg(list).to_numpy()
    return units


def seed_variance(runs: pd.DataFrame) -> TestResult:
    """Per config: mean, sd, t CI and per-seed values; the pooled seed sd with its chi-square CI (the residual sd of
    OLS bpb ~ C(config), plus C(seed) as a block when seeds recur across configs), and the minimum difference
    between two configs detectable at that spread."""
    from scipy import stats

    key, title = "6_seed_variance", "Seed variance per config"
    q = "How much does BPB vary between seeds of one config, and what difference can the sweep resolve?"
    r = complete_rows(runs, ["bpb", "config_key"])
    units = seed_units(r)
    units = units[units.groupby("config_key")["bpb"].transform("size") >= 2]
    block = seed_block(units)
    method = ("per config: mean, sd, t-based 95% CI over its seeds (runs that repeat a seed are averaged first); "
              "pooled sd = the residual sd of OLS bpb ~ C(config)" + block + " with a chi-square CI; MDE = the "
              "difference between two configs of the median seeds per config that a t test at the pooled sd, on "
              "its df" + (", the two paired by seed," if block else "") + " detects with 80% power; a config's "
              "mde_vs_same_n is the same at that config's own sd on 2 n - 2 df, too unstable at 2-3 seeds to plan "
              "with, which is why the verdict uses the pooled sd")
    rows = [_config_row(g) for _, g in units.groupby("config_key", sort=True)]
    in_units = {u for ids in units["run_ids"] for u in ids}
    kept = [u for u in r["run_id"] if u in in_units]
    # the values the numbers rest on are the seed units: a seed run twice is one (report's `units` column)
    base = {"n_runs": len(kept), "runs": kept, "tables": {"per_config": rows}, "in_family": False,
            "unit": "BPB (seed sd)", "extra": {"units": len(units)}}
    if not rows:
        return not_enough(key, title, q, method, "no config was run with more than one seed", **base)
    # every config here has >= 2 units, so df >= 1; identical reruns add exactly 0 (a fit's residuals would add
    # rounding noise, sd ~1e-16, and an MDE of ~1e-15 BPB)
    df = float(sum(row["n"] - 1 for row in rows))
    sd = math.sqrt(sum((row["n"] - 1) * row["sd"] ** 2 for row in rows) / df)
    if not sd > 0:
        return not_enough(key, title, q, method, "seed reruns have identical BPB: no spread to estimate", **base)
    if block:  # seed as a fixed block (analysis_methods.md, (6)): a seed's shared effect leaves the spread
        # residual df >= 2 here: every config has >= 2 units (so configs <= n/2) and seed_block asks for fewer
        # than n/2 seeds, so the fit has at most n - 2 coefficients
        fit = ols("bpb ~ C(config_key)" + block, units, cov="nonrobust")
        df, sd = float(fit.df_resid), math.sqrt(max(float(fit.ssr), 0.0) / float(fit.df_resid))
        if not sd > 1e-9 * abs(float(units["bpb"].mean())):  # what is left is the fit's rounding noise
            return not_enough(key, title, q, method, "the seeds' shared effects explain all the spread: none "
                              "left to estimate", **base)
    lo = sd * math.sqrt(df / stats.chi2.ppf(0.975, df))
    hi = sd * math.sqrt(df / stats.chi2.ppf(0.025, df))
    n_med = int(np.median([row["n"] for row in rows]))
    warnings = _seed_warnings(units, rows)
    if warnings:
        base["warnings"] = warnings
    # the pooled sd is what the sweep compares configs against, with its own df: with the seed as a block it is
    # the spread of a difference paired by seed, and the unpaired t on 2 n - 2 df would mix the two
    mde = mde_from_se(sd * math.sqrt(2 / n_med), df)
    res = TestResult(key=key, title=title, question=q, method=method, status=DESCRIPTIVE, effect=sd, ci_low=lo,
                     ci_high=hi, mde=mde, **base)
    res.extra.update(pooled_df=df, seeds_per_config=n_med)
    med = float(np.median([row["sd"] for row in rows]))
    res.extra["median_config_sd"] = med  # robust beside the pooled sd, which one unstable config can dominate
    seeded = bool(units["seed"].notna().any())
    what = "pooled seed sd" if seeded else "pooled rerun sd (no run records its seed)"
    per = "seeds" if seeded else "runs"
    shared = ", the seeds' shared effects in it" if block else ""
    res.verdict = (f"{DESCRIPTIVE}: {what} {sd:.4g} BPB (95% CI {lo:.3g} to {hi:.3g}, df {df:g}; median "
                   f"per-config sd {med:.3g}{shared}); with {n_med} {per} per config, two configs must differ by "
                   f"about {mde:.3g} BPB to be detected with 80% power (a t test at the pooled sd on its df {df:g})"
                   if mde is not None else f"{DESCRIPTIVE}: {what} {sd:.4g} BPB")
    return res


def _config_row(g: pd.DataFrame) -> dict[str, Any]:
    from scipy import stats

    v = g["bpb"].to_numpy(float)
    # identical reruns have sd 0, not the rounding noise of their mean (3 x 0.1 / 3 is not 0.1)
    spread = float(v.std(ddof=1)) if np.ptp(v) > 0 else 0.0
    row: dict[str, Any] = {"config": str(g["label"].iloc[0]), "config_key": str(g["config_key"].iloc[0]),
                           "n": int(v.size), "mean": float(v.mean()), "sd": spread,
                           "per_seed": dict(zip(g["_seed_unit"], map(float, v), strict=True)),
                           "runs": [u for ids in g["run_ids"] for u in ids]}
    again = {unit: [float(x) for x in vals] for unit, vals in zip(g["_seed_unit"], g["values"], strict=True)
             if len(vals) > 1}
    if again:
        row["same_seed_reruns"] = again
    if row["sd"] > 0:
        ci = stats.ttest_1samp(v, 0.0).confidence_interval()
        row.update(ci_low=float(ci.low), ci_high=float(ci.high), mde_vs_same_n=mde_two_sample(row["sd"], v.size))
    return row


def _seed_warnings(units: pd.DataFrame, rows: list[dict[str, Any]]) -> list[str]:
    out = []
    if units["seed"].isna().any():
        out.append("some runs record no seed: repeated configs are treated as reruns, so any difference the config "
                   "columns do not record (and the legacy logs often do not) inflates this spread")
    again = [(row["config"], unit, len(vals)) for row in rows for unit, vals in row.get("same_seed_reruns", {}).items()]
    if again:
        named = "; ".join(f"{config}: {unit} x{n}" for config, unit, n in again[:3])
        out.append(f"{len(again)} seed(s) ran more than once within one config ({named}"
                   f"{'; ...' if len(again) > 3 else ''}): each is averaged into one value, because the spread "
                   "between runs of one seed is run-to-run noise (or a difference the config does not record), not "
                   "seed variance")
    resid = np.concatenate([np.asarray(list(row["per_seed"].values())) - row["mean"] for row in rows])
    if resid.size >= 8 and np.ptp(resid) > 0:
        from scipy import stats

        excess = float(stats.kurtosis(resid, fisher=True, bias=False))
        if excess > max(2.0, 4 * math.sqrt(24 / resid.size)):
            out.append(f"the within-config spread is heavy-tailed (excess kurtosis {excess:.3g} over {resid.size} "
                       "values): a few outlying runs dominate the pooled sd, and its chi-square interval, which "
                       "assumes normal spread, is too narrow; the median per-config sd is the robust figure")
    return out


def _seed(s: Any) -> Any:
    try:
        return int(s)
    except (TypeError, ValueError):
        return s


def _seed_key(seed: Any, run_id: str) -> str:
    """`seed 7`, or the run id when the run records no seed (legacy imports), so no value is lost."""
    return f"seed {_seed(seed)}" if not pd.isna(seed) else str(run_id)
