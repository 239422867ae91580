"""Tests 2 and 3: run-level regressions (one row per run or unit).

2. Quantization gap (post-quant minus pre-quant BPB of the same checkpoint) against loops and cadence (as the
   fraction of C-steps, 1/cadence, so cadence 0 = never crawl fits on the same axis), with log width as a
   covariate when it varies.
3. Width attribution: how much of the BPB spread tracks log(width) versus unique layers and loops (the estimate:
   `width_effect`), with a nested F test, matched-width comparisons and a VIF collinearity warning. Parameter
   count is never a predictor beside log width and unique layers (it is nearly a function of them)."""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import pandas as pd

from clowncar.analysis.frames import UNITS, complete_rows, missing, start_units, units_of
from clowncar.analysis.result import TestResult, decide, finite_or_none, not_enough
from clowncar.analysis.stats import coef, coef_table, mde_from_se, ols, unusable, vifs
from clowncar.analysis.width_effect import init_cells, width_over_cells, width_over_units

VIF_WARN = 5.0
GAP_MARGIN = 0.002  # BPB per loop / per unit C-fraction: below this a gap trend is practically irrelevant


def _varies(s: pd.Series) -> bool:
    return s.dropna().nunique() > 1


def seed_block(r: pd.DataFrame) -> str:
    """`+ C(seed)` when seeds are shared across configs (seed as a block), else nothing."""
    if "seed" not in r or r["seed"].isna().any() or r["seed"].nunique() < 2:
        return ""
    per_seed = r.groupby("seed").size()
    return " + C(seed)" if per_seed.min() >= 2 and r["seed"].nunique() < len(r) / 2 else ""


def quant_gap_tests(runs: pd.DataFrame) -> list[TestResult]:
    q = {"loops": "Does the quantization gap (post-quant minus pre-quant BPB) grow with the number of loops?",
         "crawl_frac": "Does the quantization gap change with cadence (fraction of C-steps = 1/cadence)?"}
    titles = {"loops": "Quantization gap vs loops", "crawl_frac": "Quantization gap vs cadence (C-fraction)"}
    keys = {"loops": "2a_gap_loops", "crawl_frac": "2b_gap_cadence"}
    cols = ["quant_gap", "loops", "crawl_frac"]
    r = complete_rows(runs, cols)
    terms = [t for t in ("loops", "crawl_frac") if _varies(r[t])]  # complete_rows keeps every column
    if "width" in r and r["width"].notna().all() and _varies(r["width"]):
        r = r.assign(log_width=np.log(r["width"]))
        covars = ["log_width"]
    else:
        covars = []
    block = seed_block(r)
    formula = "quant_gap ~ " + " + ".join(terms + covars or ["1"]) + block
    mode = runs.attrs.get("gap_mode", "standard")
    starts = _start_groups(r)
    units = int(starts.nunique())
    if units < len(r):  # cadence siblings of one start move together: each start is one cluster of the errors
        errors = (f"standard errors clustered by start ({units_of(units, len(r))}: {UNITS}), t reference with "
                  "starts - 1 df")
        fit = ols(formula, r, cov="cluster", groups=starts.cat.codes) if terms else None
    else:
        errors = "HC3 standard errors, t reference; one row per run"
        fit = ols(formula, r) if terms else None
    gap_words = f"the gap in the {mode} eval for every run" if mode else "no run recorded a quantization gap"

    def method(term: str) -> str:
        """The fitted model, or for a test whose term takes one value (left out of the fit) the model with it: each
        test names the model of its own coefficient."""
        own = [t for t in ("loops", "crawl_frac") if t in terms or t == term]
        return f"OLS quant_gap ~ {' + '.join(own + covars)}{block}, {errors}; {gap_words}"

    unfit = unusable(fit) if fit is not None else None
    if fit is not None and not unfit and units < len(r) and units - 1 < 2:
        unfit = f"{units} starts leave {units - 1} df for standard errors clustered by start (at least 2 needed)"
    out = []
    for term in ("loops", "crawl_frac"):
        unit = "BPB per loop" if term == "loops" else "BPB per unit C-fraction"
        base = {"unit": unit, "n_runs": len(r), "runs": r["run_id"].tolist(), "extra": {"units": units}}
        if fit is None or unfit or term not in terms:
            if term in terms and unfit:
                why = f"{formula}: {unfit}"
            elif term in terms or len(r) == 0:
                why = (f"{len(r)} run(s) with a quantization gap, loops and cadence{missing(runs, cols)} (needs >= 2 "
                       "values and enough runs for the regression)")
            else:
                why = (f"{term} takes a single value among the {len(r)} runs with a quantization gap (needs >= 2 "
                       "values and enough runs for the regression)")
            out.append(not_enough(keys[term], titles[term], q[term], method(term), why, **base))
            continue
        c = coef(fit, term)
        res = TestResult(key=keys[term], title=titles[term], question=q[term], method=method(term), effect=c["estimate"],
                         ci_low=c["ci_low"], ci_high=c["ci_high"], p_value=c["p"], margin=GAP_MARGIN,
                         mde=mde_from_se(c["se"], getattr(fit, "df_resid_inference", None) or fit.df_resid),
                         tables={"coefficients": coef_table(fit)}, **base)
        if note := _margin_beyond_gap(r["quant_gap"], unit):
            res.extra["verdict_note"] = note
        out.append(decide(res))
    return out


def _start_groups(r: pd.DataFrame) -> pd.Series:
    """Each run's start (`frames.start_units`) as a category; a run with no known start is its own."""
    keys = r["start_key"] if "start_key" in r else pd.Series([None] * len(r), index=r.index)
    return pd.Series([k if isinstance(k, str) else f"run:{rid}" for k, rid in zip(keys, r["run_id"], strict=True)],
                     index=r.index, dtype="category")


def _margin_beyond_gap(gap: pd.Series, unit: str) -> str | None:
    """A caveat when the runs' whole quantization gap is no larger than GAP_MARGIN (a tiny CPU sweep: 0.0003 BPB
    against 0.002): "no effect larger than the margin" is then true of any trend these runs could show."""
    mean = float(gap.abs().mean())
    if mean > GAP_MARGIN:
        return None
    return (f"the runs' mean absolute quantization gap is only {mean:.2g} BPB, no larger than the margin of {GAP_MARGIN} "
            f"{unit}: at this scale the margin says little")


SOURCE_WORDS = {"run": "runs clowncar ran", "import": "imported runs"}


def source_confound(runs: pd.DataFrame, column: str) -> str | None:
    """Why `column` cannot be compared across these runs when each of its values occurs in runs of one source only
    (clowncar's own beside imported ones): its contrast is then the data, trainer and length of the two sources
    as much as the column (walk 3: widths 32-64 of a demo beside widths 496-608 of imported FineWeb logs gave a
    width 'signal'). None when a value is shared, or when the runs have one source."""
    if "source" not in runs or runs["source"].dropna().nunique() < 2:
        return None
    sources = runs.dropna(subset=["source"]).groupby(column)["source"].unique()
    if (sources.map(len) > 1).any():
        return None
    by_source: dict[str, list[str]] = {}
    for value, (source,) in sources.items():
        by_source.setdefault(str(source), []).append(f"{value:g}" if isinstance(value, float) else str(value))
    where = "; ".join(f"{', '.join(values)} only in {SOURCE_WORDS.get(src, src + ' runs')}"
                      for src, values in sorted(by_source.items()))
    return (f"{column} is confounded with where the runs come from ({where}): every contrast of it is also one "
            "of data, trainer and training length; compare it within one source")


def width_tests(runs: pd.DataFrame) -> list[TestResult]:
    qa = ("How much BPB tracks model width once unique layers and loops are held fixed "
          "(BPB at the widest minus the narrowest width)?")
    qb = "Do unique layers and loops (sharing) explain BPB beyond width (nested F test)?"
    need = ["bpb", "width"]
    runs_r = complete_rows(runs, need)
    runs_r = runs_r[runs_r["width"] > 0]
    r = start_units(runs_r, ["width", "unique_layers", "loops"], ["bpb"])
    r = r.assign(log_width=np.log(r["width"]))
    others = [t for t in ("unique_layers", "loops") if t in r and r[t].notna().all() and _varies(r[t])]
    block = seed_block(r)
    f_w = "bpb ~ log_width" + block
    f_f = f_w + "".join(f" + {t}" for t in others)

    def base() -> dict[str, Any]:  # a new `extra` for each result: `_seed_style` adds to 3a's
        return {"n_runs": len(runs_r), "runs": runs_r["run_id"].tolist(), "extra": {"units": len(r)}}

    confounded = source_confound(runs_r, "width")
    if len(r) < 4 or not _varies(r["width"]) or confounded:
        why = confounded or (f"{units_of(len(r), len(runs_r))} with BPB and width, {r['width'].nunique()} distinct "
                             f"width(s){missing(runs, need)}")
        return [not_enough("3a_width", "Width attribution", qa, f"OLS {f_f}, HC3", why, **base()),
                not_enough("3b_sharing_beyond_width", "Sharing beyond width", qb, "nested F test", why, **base())]
    span = math.log(r["width"].max() / r["width"].min())
    warnings, tables = [], {"matched": matched_width(runs_r), "best_per_width": best_per_width(runs_r)}
    vif = vifs(r, ["log_width", *others]) if others else {}
    tables["vif"] = [{"term": k, "vif": v} for k, v in vif.items()]
    high = {k: v for k, v in vif.items() if not v < VIF_WARN}
    if high:
        warnings.append("collinear predictors (VIF >= {:g}): {}; partial effects are unstable and cannot be "
                        "attributed separately".format(VIF_WARN, ", ".join(f"{k} {v:.3g}" for k, v in high.items())))
    cells = init_cells(r)
    if cells is not None:  # layouts of one seed and width share initial weights: the cells are the width's units
        res_a = width_over_cells(r, cells, others, qa, span, warnings, tables, base())
    else:
        res_a = width_over_units(r, f_w, f_f, others, qa, span, warnings, tables, base())
    _seed_style(res_a, runs_r)
    return [res_a, _nested(r, f_w, f_f, others, qb, base())]


def _seed_style(res: TestResult, r: pd.DataFrame) -> None:
    """Add the seed's way of quoting the width effect (best run at the narrowest width minus best at the widest)
    to the verdict, labelled for what it is."""
    contrast = best_width_contrast(res)
    if contrast is None:
        return
    lo, hi = int(r["width"].min()), int(r["width"].max())
    res.extra["best_per_width_contrast"] = contrast
    res.extra["verdict_note"] = (f"seed-style contrast, best run at width {lo} minus best at {hi}: {contrast:+.4f} BPB "
                    "(descriptive: a best-of-configs comparison, not a controlled estimate)")
    if res.p_value is not None:
        decide(res)
    else:
        res.verdict += "; " + res.extra["verdict_note"]


def _nested(r: pd.DataFrame, f_w: str, f_f: str, others: list[str], q: str, base: dict[str, Any]) -> TestResult:
    from statsmodels.stats.anova import anova_lm

    method = f"nested F test: anova_lm(ols({f_w}), ols({f_f})), one row per unit ({UNITS})"
    if not others:
        return not_enough("3b_sharing_beyond_width", "Sharing beyond width", q, method,
                          "unique layers and loops do not vary among these runs", **base)
    small, big = ols(f_w, r, cov="nonrobust"), ols(f_f, r, cov="nonrobust")
    if big.df_model <= small.df_model:  # statsmodels counts the design's rank: nothing to test beyond width
        return not_enough("3b_sharing_beyond_width", "Sharing beyond width", q, method,
                          "among these runs unique layers and loops are a linear function of log width (each layout "
                          "at its own width), so what they add cannot be told apart from width", **base)
    if big.df_resid < 2:
        return not_enough("3b_sharing_beyond_width", "Sharing beyond width", q, method,
                          f"{units_of(len(r), base['n_runs'])} leave {int(big.df_resid)} residual df for the full "
                          "model", **base)
    table = anova_lm(small, big)
    p = float(table["Pr(>F)"].iloc[1])
    f = float(table["F"].iloc[1])
    extra = {**base["extra"], "F": f, "df_num": float(table["df_diff"].iloc[1]), "df_den": float(big.df_resid)}
    res = TestResult(key="3b_sharing_beyond_width", title="Sharing beyond width", question=q, method=method,
                     unit="F", effect=f, p_value=p, **{**base, "extra": extra})
    return decide(res)


def matched_width(r: pd.DataFrame) -> list[dict[str, Any]]:
    """At each width with more than one layout: mean BPB per (unique layers, loops), so sharing is compared at
    fixed width. And for each layout seen at several widths: the BPB difference per width."""
    rows: list[dict[str, Any]] = []
    keys = [k for k in ("unique_layers", "loops", "cadence") if k in r]
    for w, g in r.groupby("width"):
        if g[keys].drop_duplicates().shape[0] > 1:
            for lay, h in g.groupby(keys, dropna=False):
                rows.append({"comparison": "same width", "width": float(w),
                             **{k: finite_or_none(v) for k, v in zip(keys, lay, strict=True)},
                             "runs": len(h), "mean_bpb": float(h["bpb"].mean())})
    for lay, g in r.groupby(keys, dropna=False):
        if g["width"].nunique() > 1:
            for w, h in g.groupby("width"):
                rows.append({"comparison": "same layout", "width": float(w),
                             **{k: finite_or_none(v) for k, v in zip(keys, lay, strict=True)},
                             "runs": len(h), "mean_bpb": float(h["bpb"].mean())})
    return rows



def best_per_width(r: pd.DataFrame) -> list[dict[str, Any]]:
    """The best run at each width: the seed's way of quoting a width effect. It is a winner's-curse contrast
    (best of several configs against best of others), shown for comparison with published numbers only."""
    rows = []
    for w, g in r.groupby("width"):
        b = g.loc[g["bpb"].idxmin()]
        rows.append({"width": float(w), "runs": len(g), "best_bpb": float(b["bpb"]), "best_run": str(b["run_id"]),
                     "best_label": str(b.get("label", "")), "mean_bpb": float(g["bpb"].mean())})
    return rows


def best_width_contrast(r: TestResult) -> float | None:
    """Best BPB at the narrowest width minus best at the widest (positive = the widest is better)."""
    rows = r.tables.get("best_per_width") or []
    if len(rows) < 2:
        return None
    rows = sorted(rows, key=lambda x: x["width"])
    return rows[0]["best_bpb"] - rows[-1]["best_bpb"]
