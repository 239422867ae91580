"""Tests 5 and 6: weight sharing at matched parameter count, and seed variance per config."""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import pandas as pd

from clowncar.analysis.frames import complete_rows, missing
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
    r = complete_rows(runs, need)
    r = r.assign(stratum=_strata(r["params"]))
    r = r[r.groupby("stratum")["shared"].transform("nunique") > 1]  # strata holding shared and unshared runs
    formula = "bpb ~ shared" + (" + C(stratum)" if r["stratum"].nunique() > 1 else "") + seed_block(r)
    method = (f"OLS {formula}, HC3; runs matched when parameter counts differ by < {PARAM_TOL:.0%}; "
              "effect = shared minus unshared BPB")
    n_sh, n_un = int((r["shared"] == 1).sum()), int((r["shared"] == 0).sum())
    base = {"n_runs": len(r), "runs": r["run_id"].tolist(), "extra": {"scope": SCOPE, "shared_runs": n_sh,
                                                                      "unshared_runs": n_un}}
    if n_sh < 2 or n_un < 2:
        return not_enough(key, title, q, method,
                          f"{n_sh} shared and {n_un} unshared run(s) at matched parameter count (>= 2 each "
                          f"needed){missing(runs, need)}", **base)
    fit = ols(formula, r)
    unfit = unusable(fit)
    if unfit:
        return not_enough(key, title, q, method, f"{formula}: {unfit}", **base)
    c = coef(fit, "shared")
    res = TestResult(key=key, title=title, question=q, method=method, effect=c["estimate"], ci_low=c["ci_low"],
                     ci_high=c["ci_high"], p_value=c["p"], margin=SHARE_MARGIN,
                     mde=mde_from_se(c["se"], fit.df_resid), tables={"coefficients": coef_table(fit)}, **base)
    if "quant_gap" in r and r["quant_gap"].notna().sum() >= 4:
        res.tables["quant_gap_by_sharing"] = [
            {"shared": bool(s), "runs": int(g["quant_gap"].notna().sum()), "mean_quant_gap": float(g["quant_gap"].mean())}
            for s, g in r.groupby("shared")]
    return decide(res)


def seed_variance(runs: pd.DataFrame) -> TestResult:
    """Per config: mean, sd, t CI and per-seed values; pooled seed sd (residual of bpb ~ C(config)) with its
    chi-square CI, and the minimum difference between two configs detectable at that spread."""
    from scipy import stats

    key, title = "6_seed_variance", "Seed variance per config"
    q = "How much does BPB vary between seeds of one config, and what difference can the sweep resolve?"
    method = ("per config: mean, sd, t-based 95% CI; pooled sd = within-config sum of squares over its df (the "
              "residual sd of OLS bpb ~ C(config)) with a chi-square CI; MDE = two-sample t test at the pooled sd "
              "and the median seeds per config")
    r = complete_rows(runs, ["bpb", "config_key"])
    rep = r[r.groupby("config_key")["bpb"].transform("size") >= 2]
    rows = []
    for ck, g in rep.groupby("config_key"):
        v = g["bpb"].to_numpy(float)
        # identical reruns have sd 0, not the rounding noise of their mean (3 x 0.1 / 3 is not 0.1)
        spread = float(v.std(ddof=1)) if np.ptp(v) > 0 else 0.0
        row: dict[str, Any] = {"config": str(g["label"].iloc[0]), "config_key": str(ck), "n": int(v.size),
                               "mean": float(v.mean()), "sd": spread,
                               "per_seed": {_seed_key(s, u): float(b) for s, u, b in zip(g["seed"], g["run_id"], v, strict=True)},
                               "runs": g["run_id"].tolist()}
        if row["sd"] > 0:
            ci = stats.ttest_1samp(v, 0.0).confidence_interval()
            row.update(ci_low=float(ci.low), ci_high=float(ci.high),
                       mde_vs_same_n=mde_two_sample(row["sd"], v.size))
        rows.append(row)
    base = {"n_runs": len(rep), "runs": rep["run_id"].tolist(), "tables": {"per_config": rows}, "in_family": False,
            "unit": "BPB (seed sd)"}
    if not rows:
        return not_enough(key, title, q, method, "no config was run with more than one seed", **base)
    # every config here has >= 2 runs, so df >= 1; identical reruns add exactly 0 (a fit's residuals would add
    # rounding noise, sd ~1e-16, and an MDE of ~1e-15 BPB)
    df = float(sum(row["n"] - 1 for row in rows))
    sd = math.sqrt(sum((row["n"] - 1) * row["sd"] ** 2 for row in rows) / df)
    if not sd > 0:
        return not_enough(key, title, q, method, "seed reruns have identical BPB: no spread to estimate", **base)
    lo = sd * math.sqrt(df / stats.chi2.ppf(0.975, df))
    hi = sd * math.sqrt(df / stats.chi2.ppf(0.025, df))
    n_med = int(np.median([row["n"] for row in rows]))
    if rep["seed"].isna().any():
        base.setdefault("warnings", []).append(
            "some runs record no seed: repeated configs are treated as reruns, so any difference the config "
            "columns do not record (and the legacy logs often do not) inflates this spread")
    mde = mde_two_sample(sd, n_med)
    res = TestResult(key=key, title=title, question=q, method=method, status=DESCRIPTIVE, effect=sd, ci_low=lo,
                     ci_high=hi, mde=mde, extra={"pooled_df": df, "seeds_per_config": n_med}, **base)
    med = float(np.median([row["sd"] for row in rows]))
    res.extra["median_config_sd"] = med  # robust beside the pooled sd, which one unstable config can dominate
    res.verdict = (f"{DESCRIPTIVE}: pooled seed sd {sd:.4g} BPB (95% CI {lo:.3g} to {hi:.3g}, df {df:g}; median "
                   f"per-config sd {med:.3g}); with "
                   f"{n_med} seeds per config, two configs must differ by about {mde:.3g} BPB to be detected with "
                   "80% power" if mde is not None else f"{DESCRIPTIVE}: pooled seed sd {sd:.4g} BPB")
    return res


def _seed(s: Any) -> Any:
    try:
        return int(s)
    except (TypeError, ValueError):
        return s


def _seed_key(seed: Any, run_id: str) -> str:
    """`seed 7`, or the run id when the run records no seed (legacy imports), so no value is lost."""
    return f"seed {_seed(seed)}" if not pd.isna(seed) else str(run_id)
