"""Test 3a's estimate: how much BPB tracks log(width), over units or over draws of initial weights.

`torch.manual_seed(seed)` runs before the model is built, so every layout of one seed and one width starts from
the same embedding weights: the runs of one seed x width cell share one draw of initial weights, and width is a
property of the whole cell. A regression with one row per unit counts the layouts of a cell as independent
evidence about width, which they are not (the signal demo has a seed x width interaction, F 17.9, p 0.001).
When cells hold more than one unit the estimate is made in two stages, as for a split-plot design: (1) OLS of
BPB on one indicator per cell plus unique layers and loops (the layouts are compared inside cells), (2) OLS of
the cells' fitted levels on log(width), classical standard errors, t on cells - 2 df. The cells are then the
units of the width contrast; with one seed and two widths there is nothing left to estimate the draw's spread."""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd

from clowncar.analysis.frames import UNITS
from clowncar.analysis.result import TestResult, decide, not_enough
from clowncar.analysis.stats import coef, coef_table, mde_from_se, ols, unusable

WIDTH_MARGIN = 0.002  # BPB across the width range
TITLE = "Width attribution"


def init_cells(r: pd.DataFrame) -> pd.Series | None:
    """Each unit's draw of initial weights (`seed x width`) when every unit records its seed and some draw holds
    more than one unit; None when each unit is its own draw or the seeds are not known (imported logs)."""
    if "seed" not in r or r.empty or r["seed"].isna().any():
        return None
    cells = r["seed"].astype("int64").astype(str) + " x " + r["width"].astype("int64").astype(str)
    return cells if cells.nunique() < len(r) else None


def _cell_levels(r: pd.DataFrame, cells: pd.Series, others: list[str]) -> tuple[pd.DataFrame, list[str]]:
    """Stage 1: each cell's BPB level with the layouts (`others`) held fixed, and the terms it was adjusted for
    (none when the layouts cannot be told apart from the cells, e.g. each layout at one width only)."""
    names = sorted(cells.unique())
    one_hot = (cells.to_numpy()[:, None] == np.array(names)[None, :]).astype(float)
    adjusted = others
    x = np.hstack([one_hot, r[others].to_numpy(float)]) if others else one_hot
    if np.linalg.matrix_rank(x) < x.shape[1]:
        adjusted, x = [], one_hot
    beta, *_ = np.linalg.lstsq(x, r["bpb"].to_numpy(float), rcond=None)
    first = r.groupby(cells.to_numpy(), sort=True)
    levels = pd.DataFrame({"cell": names, "seed": first["seed"].first().to_numpy("int64"),
                           "width": first["width"].first().to_numpy("int64"), "units": first.size().to_numpy(),
                           "runs": first["unit_runs"].sum().to_numpy() if "unit_runs" in r else first.size().to_numpy(),
                           "level": beta[: len(names)]})
    return levels.assign(log_width=np.log(levels["width"].astype(float))), adjusted


def width_over_cells(r: pd.DataFrame, cells: pd.Series, others: list[str], question: str, span: float,
                     warnings: list[str], tables: dict[str, Any], base: dict[str, Any]) -> TestResult:
    levels, adjusted = _cell_levels(r, cells, others)
    n_cells = len(levels)
    stage1 = "bpb ~ C(seed x width)" + "".join(f" + {t}" for t in adjusted)
    method = (f"two stages, the draw of initial weights (seed x width) as the unit of the width contrast: OLS "
              f"{stage1} over one row per unit ({UNITS}), then OLS of the {n_cells} cells' levels on log(width), "
              "classical standard errors, t on cells - 2 df; effect = coefficient of log(width) x log(max/min "
              "width); matched-width comparisons and best-per-width (over runs) in the tables")
    if others and not adjusted:
        warnings.append(f"{', '.join(others)} cannot be told apart from the seed x width cells among these runs, so "
                        "the width effect is not adjusted for them")
    unit = f"BPB (width {int(r['width'].min())} -> {int(r['width'].max())})"
    tables["cells"] = levels.drop(columns="log_width").to_dict("records")
    base = {**base, "extra": {**base["extra"], "units": n_cells, "init_cells": n_cells, "run_units": len(r)}}
    fit = ols("level ~ log_width", levels, cov="nonrobust")
    unfit = unusable(fit, min_resid_df=1)
    if unfit:
        why = (f"the {len(r)} units share {n_cells} draws of initial weights (seed x width), which leave "
               f"{max(n_cells - 2, 0)} df for the width contrast: width cannot be told apart from the draw; run "
               "each width with more seeds" if n_cells <= 2 else f"level ~ log_width over the cells: {unfit}")
        return not_enough("3a_width", TITLE, question, method, why, unit=unit, warnings=warnings, tables=tables,
                          **base)
    c = coef(fit, "log_width")
    tables["coefficients"] = coef_table(fit)
    return decide(TestResult(
        key="3a_width", title=TITLE, question=question, method=method, unit=unit, effect=c["estimate"] * span,
        ci_low=c["ci_low"] * span, ci_high=c["ci_high"] * span, p_value=c["p"], margin=WIDTH_MARGIN,
        mde=_scaled(mde_from_se(c["se"], fit.df_resid), span), warnings=warnings, tables=tables,
        **{**base, "extra": {**base["extra"], "formula": f"{stage1}; level ~ log_width", "log_width_coef": c}}))


def width_over_units(r: pd.DataFrame, f_w: str, f_f: str, others: list[str], question: str, span: float,
                     warnings: list[str], tables: dict[str, Any], base: dict[str, Any]) -> TestResult:
    """One row per unit, HC3: each unit is its own draw of initial weights (or the seeds are not recorded)."""
    full = ols(f_f, r) if others else None
    unfit_f = unusable(full) if full is not None else None
    fit_f = full if full is not None and not unfit_f else None
    marginal = ols(f_w, r)
    unfit_w = unusable(marginal)
    fit = fit_f or (marginal if not unfit_w else None)
    used = f_f if fit_f is not None else f_w
    if unfit_f:
        warnings.append(f"{f_f}: {unfit_f}; the width effect is marginal (not adjusted)")
    method = (f"OLS {used}, HC3 standard errors, one row per unit ({UNITS}); effect = coefficient of log(width) "
              "x log(max/min width); matched-width comparisons and best-per-width (over runs) in the tables")
    unit = f"BPB (width {int(r['width'].min())} -> {int(r['width'].max())})"
    if fit is None:
        return not_enough("3a_width", TITLE, question, method, f"{f_w}: {unfit_w}", unit=unit, warnings=warnings,
                          tables=tables, **base)
    c = coef(fit, "log_width")
    tables["coefficients"] = coef_table(fit)
    if fit_f is not None and not unfit_w:  # the unadjusted (width-only) estimate beside the adjusted one
        w = coef(marginal, "log_width")
        tables["width_only_model"] = [{"formula": f_w, "effect": w["estimate"] * span, "ci_low": w["ci_low"] * span,
                                       "ci_high": w["ci_high"] * span, "p": w["p"],
                                       "note": "not adjusted for unique layers or loops"}]
    return decide(TestResult(
        key="3a_width", title=TITLE, question=question, method=method, unit=unit, effect=c["estimate"] * span,
        ci_low=c["ci_low"] * span, ci_high=c["ci_high"] * span, p_value=c["p"], margin=WIDTH_MARGIN,
        mde=_scaled(mde_from_se(c["se"], fit.df_resid), span), warnings=warnings, tables=tables,
        **{**base, "extra": {**base["extra"], "formula": used, "log_width_coef": c}}))


def _scaled(v: float | None, k: float) -> float | None:
    return None if v is None else v * k
