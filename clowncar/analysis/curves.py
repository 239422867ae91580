"""Test 4: an early boost from more loops that decays over training (loops x training-phase interaction).

Run-level form (the inferential one): each run is reduced to early = mean eval BPB over the first EARLY_FRAC of
its steps and final = its last eval; regressing (early - final) on loops across runs estimates the difference
between the loops slope early and at the end, i.e. the interaction, with runs as the unit. A cluster-robust
(by run) OLS of every eval on loops x phase with a joint Wald test of the interaction terms is reported beside
it as a check."""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd

from clowncar.analysis.frames import UNITS, missing, start_units, units_of
from clowncar.analysis.result import TestResult, decide, not_enough
from clowncar.analysis.runlevel import seed_block
from clowncar.analysis.stats import coef, coef_table, mde_from_se, ols, unusable

EARLY_FRAC = 0.3
BOOST_MARGIN = 0.002

Q = ("Do more loops give an early BPB advantage that shrinks by the end of training "
     "(loops x phase interaction on eval curves)?")


def eval_curves(evals: pd.DataFrame) -> pd.DataFrame:
    """Eval rows of one consistent kind (most common mode/weights, quantized evals excluded), numeric."""
    need = {"trial_uid", "step", "val_bpb"}
    if evals is None or evals.empty or not need <= set(evals.columns):
        return pd.DataFrame(columns=sorted(need))
    e = evals.copy()
    e["val_bpb"] = pd.to_numeric(e["val_bpb"], errors="coerce")
    e["step"] = pd.to_numeric(e["step"], errors="coerce")
    e = e.dropna(subset=["val_bpb", "step"])
    if "weights" in e:
        e = e[e["weights"].astype(str) != "quantized"]
    for col in ("mode", "weights"):
        if col in e and e[col].notna().any() and len(e):
            e = e[e[col] == e[col].value_counts().idxmax()]
    e["trial_uid"] = e["trial_uid"].astype(str)
    return e.sort_values(["trial_uid", "step"]).reset_index(drop=True)


def _per_run(e: pd.DataFrame) -> pd.DataFrame:
    rows = []
    for rid, g in e.groupby("trial_uid"):
        last = g["step"].max()
        early = g[(g["step"] <= EARLY_FRAC * last) & (g["step"] > 0)]
        if early.empty:  # also a run with one eval: its only eval is its last
            continue
        rows.append({"run_id": rid, "early": float(early["val_bpb"].mean()),
                     "final": float(g.loc[g["step"].idxmax(), "val_bpb"]), "evals": len(g)})
    return pd.DataFrame(rows, columns=["run_id", "early", "final", "evals"])


def early_boost_test(evals: pd.DataFrame, runs: pd.DataFrame) -> TestResult:
    key, title = "4_early_boost", "Early boost from loops that decays"
    e = eval_curves(evals)
    per = _per_run(e)
    per_run = per.merge(runs.reindex(columns=["run_id", "loops", "seed", "start_key"]), on="run_id",
                        how="inner").dropna(subset=["loops"])
    per_run = per_run.assign(boost=per_run["early"] - per_run["final"])
    r = start_units(per_run, ["loops"], ["boost"])  # the regression reads only the boost
    formula = "boost ~ loops" + seed_block(r)
    method = (f"per run: early = mean eval BPB over the first {EARLY_FRAC:.0%} of steps, final = last eval; "
              f"OLS {formula} with HC2, one row per unit ({UNITS}) (effect = loops slope early minus loops slope "
              "final, BPB per loop; negative = an early advantage of more loops that decays); check: OLS val_bpb ~ "
              "loops * C(phase) with SEs clustered by unit and a joint Wald test of the interaction")
    base = {"unit": "BPB per loop", "n_runs": len(per_run), "n_steps": int(per_run["evals"].sum()),
            "runs": per_run["run_id"].tolist(), "extra": {"units": len(r)}}
    if len(r) < 4 or r["loops"].nunique() < 2:
        return not_enough(key, title, Q, method,
                          f"{units_of(len(r), len(per_run))} with an eval curve (>= 2 evals, one in the first "
                          f"{EARLY_FRAC:.0%}) and "
                          f"{r['loops'].nunique()} distinct loop count(s); needs >= 4 runs and >= 2 loop counts"
                          f"{missing(runs, ['loops'])}",
                          **base)
    # HC2, not HC3: with ~10 runs HC3 was over-conservative in our null simulations (1% false positives at
    # alpha = 5%); HC2 is unbiased under equal variances and still robust to unequal ones
    fit = ols(formula, r, cov="HC2")
    unfit = unusable(fit)
    if unfit:
        return not_enough(key, title, Q, method, f"{formula}: {unfit}", **base)
    c = coef(fit, "loops")
    res = TestResult(key=key, title=title, question=Q, method=method, effect=c["estimate"], ci_low=c["ci_low"],
                     ci_high=c["ci_high"], p_value=c["p"], margin=BOOST_MARGIN, mde=mde_from_se(c["se"], fit.df_resid),
                     tables={"coefficients": coef_table(fit),
                             "per_run": per_run.drop(columns="start_key").to_dict("records")}, **base)
    res.extra["interaction_check"] = _cluster_check(e, runs)
    return decide(res)


CLUSTER_SINGULAR = ("the cluster-robust covariance is singular (no run-to-run variation left in these terms, "
                    "so their standard errors and the Wald test are undefined)")
EXACT_FIT = ("every eval lies on loops x phase exactly (the residuals are zero up to rounding), so the standard "
             "errors and the Wald test are undefined")


def _undefined_cluster_fit(fit: Any) -> str | None:
    """Why the cluster-robust standard errors of `fit` are rounding noise, or None.

    A cluster covariance is a sum of one outer product per run: when every run's residuals cancel in some
    direction (noise-free curves that differ between runs only by an offset), that direction's variance is 0,
    and rounding makes it a tiny number of either sign (a negative one has a NaN square root). Each variance is
    compared with the same term's classical one, which makes the test free of the terms' units; rounding leaves
    ratios near 1e-15, real clustering effects are many orders of magnitude larger. An exact fit makes every
    variance rounding noise, the classical ones too, so it is caught first."""
    y = np.asarray(fit.model.endog, dtype=float)
    if not fit.ssr > 1e-20 * float(y @ y):
        return EXACT_FIT
    robust = np.diag(np.asarray(fit.cov_params()))
    classical = np.diag(np.asarray(fit.normalized_cov_params)) * fit.scale
    flat = [str(n) for n, r, c in zip(fit.params.index, robust, classical, strict=True) if not r > 1e-10 * c]
    return f"{CLUSTER_SINGULAR}: {', '.join(flat)}" if flat else None


def _cluster_check(e: pd.DataFrame, runs: pd.DataFrame) -> dict[str, Any]:
    """Every eval row: val_bpb ~ loops * C(phase), SEs clustered by unit (`start_units`: the runs of one seed
    and one model are one cluster); joint Wald test of loops:phase."""
    d = e.merge(runs.reindex(columns=["run_id", "loops", "start_key"]).rename(columns={"run_id": "trial_uid"}),
                on="trial_uid").dropna(subset=["loops"])
    d = d.assign(start_key=d["start_key"].where(d["start_key"].notna(), d["trial_uid"]))
    frac = d["step"] / d.groupby("trial_uid")["step"].transform("max")
    # every run of the test has an early and a final eval, and there are at least 4: no size check needed here
    d = d.assign(phase=np.where(frac <= EARLY_FRAC, "early", np.where(frac < 1, "middle", "final")))
    try:
        fit = ols("val_bpb ~ loops * C(phase)", d, cov="cluster", groups=pd.factorize(d["start_key"])[0])
        undefined = _undefined_cluster_fit(fit)
        if undefined:
            return {"status": f"skipped: {undefined}"}
        names = [n for n in fit.params.index if n.startswith("loops:")]  # >= 2 loop counts and phases: never none
        hyp = ", ".join(f"{n} = 0" for n in names)
        w = fit.wald_test(hyp, scalar=True)
        return {"status": "ok", "terms": coef_table(fit), "wald_F": float(np.asarray(w.statistic).item()),
                "wald_p": float(np.asarray(w.pvalue).item()), "evals": len(d)}
    except Exception as exc:  # the check is auxiliary: report why it could not run
        return {"status": f"skipped: {type(exc).__name__}: {exc}"}
