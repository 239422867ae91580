"""Test 3a takes the draw of initial weights (seed x width) as the unit of the width contrast when the layouts of
one seed and width share it: its numbers are the two-stage fit written out here with numpy and statsmodels, a
null simulation with a shared draw keeps its false-positive rate at alpha (counting units instead rejects several
times as often), and a design whose draws cannot carry the contrast says so."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest
import statsmodels.formula.api as smf

from clowncar.analysis.frames import run_table
from clowncar.analysis.result import UNDECIDED
from clowncar.analysis.runlevel import width_tests
from clowncar.analysis.width_effect import init_cells


def _runs(seeds: tuple[int, ...], widths: tuple[int, ...], rng: np.random.Generator, cell_sd: float = 0.02,
          loops_of=lambda w: (1, 2, 3)) -> pd.DataFrame:
    """One run per seed x width x loops (each its own start): BPB = -0.1 per log width + 0.01 per loop + the
    cell's draw + noise."""
    rows = []
    for s in seeds:
        for w in widths:
            draw = rng.normal(0, cell_sd)
            for lp in loops_of(w):
                rows.append({"run_id": f"s{s}w{w}l{lp}", "seed": float(s), "width": float(w), "unique_layers": 3.0,
                             "loops": float(lp), "bpb": 2.5 - 0.1 * math.log(w) + 0.01 * lp + draw
                             + rng.normal(0, 0.002)})
    return pd.DataFrame(rows)


def _two_stage_by_hand(runs: pd.DataFrame, adjust: list[str]):
    """Stage 1 with numpy (one indicator per seed x width, plus `adjust`), stage 2 with statsmodels OLS."""
    cell = runs["seed"].astype(int).astype(str) + "/" + runs["width"].astype(int).astype(str)
    names = sorted(cell.unique())
    x = np.column_stack([(cell == n).to_numpy(float) for n in names] + [runs[t].to_numpy(float) for t in adjust])
    beta = np.linalg.lstsq(x, runs["bpb"].to_numpy(), rcond=None)[0]
    widths = [float(n.split("/")[1]) for n in names]
    levels = pd.DataFrame({"level": beta[: len(names)], "log_width": np.log(widths)})
    return smf.ols("level ~ log_width", levels).fit(use_t=True)


def test_the_width_effect_is_the_slope_of_the_seed_width_cells_levels_on_log_width() -> None:
    runs = _runs((1, 2), (32, 48, 64), np.random.default_rng(1))
    res = next(r for r in width_tests(runs) if r.key == "3a_width")
    fit = _two_stage_by_hand(runs, ["loops"])
    span = math.log(64 / 32)
    ci = fit.conf_int(alpha=0.05).loc["log_width"]
    assert (res.effect, res.ci_low, res.ci_high, res.p_value) == pytest.approx(
        (fit.params["log_width"] * span, ci[0] * span, ci[1] * span, fit.pvalues["log_width"]), rel=1e-9)
    assert fit.df_resid == 4  # 6 cells - 2: the cells are the units, not the 18 runs
    assert (res.n_runs, res.extra["units"], res.extra["run_units"]) == (18, 6, 18)
    assert res.extra["formula"] == "bpb ~ C(seed x width) + loops; level ~ log_width"
    assert "t on cells - 2 df" in res.method and not res.warnings
    cells = {row["cell"]: row for row in res.tables["cells"]}
    assert sorted(cells) == ["1 x 32", "1 x 48", "1 x 64", "2 x 32", "2 x 48", "2 x 64"]
    assert (cells["2 x 48"]["units"], cells["2 x 48"]["runs"], cells["2 x 48"]["width"]) == (3, 3, 48)


def test_layouts_found_only_inside_one_width_leave_the_cells_unadjusted_and_say_so() -> None:
    runs = _runs((1, 2), (32, 48, 64), np.random.default_rng(2))
    runs["unique_layers"] = runs["width"] / 16 + 4 - runs["loops"]  # layers + loops fixed by the width
    res = next(r for r in width_tests(runs) if r.key == "3a_width")
    fit = _two_stage_by_hand(runs, [])
    assert res.effect == pytest.approx(fit.params["log_width"] * math.log(2), rel=1e-9)
    assert res.extra["formula"] == "bpb ~ C(seed x width); level ~ log_width"
    assert ("unique_layers, loops cannot be told apart from the seed x width cells among these runs, so the width effect is not "
            "adjusted for them") in res.warnings


def test_one_seed_at_two_widths_cannot_tell_width_from_the_draw() -> None:
    runs = _runs((7,), (32, 64), np.random.default_rng(3))
    res = next(r for r in width_tests(runs) if r.key == "3a_width")
    assert res.status == UNDECIDED and res.p_value is None
    assert ("the 6 units share 2 draws of initial weights (seed x width), which leave 0 df for the width contrast: "
            "width cannot be told apart from the draw; run each width with more seeds") in res.verdict
    three = next(r for r in width_tests(_runs((7,), (32, 48, 64), np.random.default_rng(3))) if r.key == "3a_width")
    assert three.p_value is not None and "t on cells - 2 df" in three.method  # 3 widths: 1 df


def test_units_that_are_each_their_own_draw_keep_the_per_unit_fit() -> None:
    runs = _runs((1, 2), (32, 64), np.random.default_rng(4))
    distinct = runs.assign(seed=np.arange(len(runs), dtype=float))
    unknown = runs.assign(seed=np.nan)
    assert init_cells(distinct) is None and init_cells(unknown) is None and init_cells(runs) is not None
    for table in (distinct, unknown):
        res = next(r for r in width_tests(table) if r.key == "3a_width")
        assert res.method.startswith("OLS bpb ~ log_width + loops, HC3 standard errors, one row per unit")
        assert res.extra["units"] == 12 and "cells" not in res.tables


def _null_p_values(sims, reps: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """3a's p on the signal sweep's design with no width effect and a draw shared by each seed x width: with the
    cells as units, and with the per-unit fit that counted each start as independent evidence about width."""
    import clowncar.analysis.runlevel as runlevel

    rng = np.random.default_rng(seed)
    cells, units = [], []
    for _ in range(reps):
        runs = run_table(sims["siblings"](rng, cell_sd=0.02)[0])
        cells.append(next(r for r in width_tests(runs) if r.key == "3a_width").p_value)
        saved, runlevel.init_cells = runlevel.init_cells, lambda r: None
        try:
            units.append(next(r for r in width_tests(runs) if r.key == "3a_width").p_value)
        finally:
            runlevel.init_cells = saved
    return np.array(cells), np.array(units)


@pytest.mark.slow  # 200 simulated sweeps, two fits each: about 30 s on an idle core
def test_a_draw_shared_by_seed_and_width_keeps_the_false_positive_rate_at_alpha(sims) -> None:
    from scipy import stats

    p_cells, p_units = _null_p_values(sims, 200, 11)
    lo, hi = stats.binom.ppf(0.0005, 200, 0.05), stats.binom.isf(0.0005, 200, 0.05)
    assert lo <= (p_cells < 0.05).sum() <= hi
    assert (p_units < 0.05).sum() > 2 * hi  # counted by unit, the shared draws look like width
