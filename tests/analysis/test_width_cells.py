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
from clowncar.analysis.stats import LONE_RUN, mde_from_se
from clowncar.analysis.width_effect import init_cells

QUESTION = ("How much BPB tracks model width once unique layers and loops are held fixed (BPB at the widest minus the "
            "narrowest width)?")


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


def test_the_cell_result_carries_its_wording_margin_power_and_stage_two_coefficients() -> None:
    runs = _runs((1, 2), (32, 48, 64), np.random.default_rng(1))
    res = next(r for r in width_tests(runs) if r.key == "3a_width")
    fit = _two_stage_by_hand(runs, ["loops"])
    span = math.log(64 / 32)
    assert (res.title, res.question, res.unit, res.margin) == ("Width attribution", QUESTION, "BPB (width 32 -> 64)",
                                                                0.002)
    assert res.mde == pytest.approx(mde_from_se(fit.bse["log_width"], 4) * span, rel=1e-9)
    assert [row["term"] for row in res.tables["coefficients"]] == ["Intercept", "log_width"]
    assert [row["estimate"] for row in res.tables["coefficients"]] == pytest.approx(list(fit.params), rel=1e-9)
    assert res.extra["log_width_coef"]["estimate"] == pytest.approx(fit.params["log_width"], rel=1e-9)
    assert res.extra["log_width_coef"]["se"] == pytest.approx(fit.bse["log_width"], rel=1e-9)
    seeds_and_widths = [(row["seed"], row["width"]) for row in res.tables["cells"]]
    assert seeds_and_widths == [(1, 32), (1, 48), (1, 64), (2, 32), (2, 48), (2, 64)]
    assert all(type(v) is int for pair in seeds_and_widths for v in pair)  # whole numbers, as the cells are named


def test_cell_levels_line_up_with_their_cells_whatever_order_the_runs_come_in() -> None:
    # "1 x 128" sorts before "1 x 32" as text: the runs' own order is neither the names' nor the widths'
    runs = _runs((1, 2), (32, 64, 128), np.random.default_rng(5)).sample(frac=1.0, random_state=3)
    res = next(r for r in width_tests(runs) if r.key == "3a_width")
    fit = _two_stage_by_hand(runs, ["loops"])
    assert res.effect == pytest.approx(fit.params["log_width"] * math.log(4), rel=1e-9)
    assert [row["cell"] for row in res.tables["cells"]] == ["1 x 128", "1 x 32", "1 x 64", "2 x 128", "2 x 32",
                                                           "2 x 64"]
    assert [row["width"] for row in res.tables["cells"]] == [128, 32, 64, 128, 32, 64]


def test_a_cell_counts_every_run_of_its_units_as_its_runs() -> None:
    one_each = _runs((1, 2), (32, 48, 64), np.random.default_rng(6)).assign(start_key=lambda d: d["run_id"])
    siblings = one_each.assign(run_id=one_each["run_id"] + "c2", bpb=one_each["bpb"] + 0.001)  # same start
    res = next(r for r in width_tests(pd.concat([one_each, siblings], ignore_index=True)) if r.key == "3a_width")
    cells = {row["cell"]: row for row in res.tables["cells"]}
    assert (cells["2 x 48"]["units"], cells["2 x 48"]["runs"]) == (3, 6)
    assert (res.n_runs, res.extra["units"], res.extra["run_units"]) == (36, 6, 18)


def test_three_cells_whose_fit_is_unusable_say_why_and_keep_the_warnings() -> None:
    rng = np.random.default_rng(7)
    runs = pd.concat([_runs((1, 2), (32,), rng), _runs((1,), (64,), rng)], ignore_index=True)
    runs["unique_layers"] = runs["width"] / 16 + 4 - runs["loops"]  # layers + loops fixed by the width
    res = next(r for r in width_tests(runs) if r.key == "3a_width")
    assert res.status == UNDECIDED and res.p_value is None
    assert f"level ~ log_width over the cells: {LONE_RUN}" in res.verdict  # width 64 is one cell alone
    assert "draws of initial weights" not in res.verdict
    assert ("unique_layers, loops cannot be told apart from the seed x width cells among these runs, so the width "
            "effect is not adjusted for them") in res.warnings


def test_a_per_unit_fit_that_cannot_be_made_says_why_with_its_wording_warnings_and_tables() -> None:
    runs = pd.DataFrame({"run_id": ["a", "b", "c", "d"], "seed": [1.0, 2.0, 3.0, 4.0],
                         "width": [32.0, 32.0, 32.0, 64.0], "unique_layers": 3.0, "loops": [1.0, 2.0, 3.0, 1.0],
                         "bpb": [2.10, 2.12, 2.15, 2.01]})
    res = next(r for r in width_tests(runs) if r.key == "3a_width")
    assert res.status == UNDECIDED and res.p_value is None
    assert f"bpb ~ log_width: {LONE_RUN}" in res.verdict  # width 64 is one run alone
    assert (res.title, res.question, res.unit) == ("Width attribution", QUESTION, "BPB (width 32 -> 64)")
    assert res.method.startswith("OLS bpb ~ log_width, HC3 standard errors, one row per unit")
    assert any(w.startswith("bpb ~ log_width + loops: ") and w.endswith("; the width effect is marginal (not adjusted)")
               for w in res.warnings)
    assert [row["width"] for row in res.tables["best_per_width"]] == [32.0, 64.0] and "matched" in res.tables
    assert (res.n_runs, res.runs, res.extra["units"]) == (4, ["a", "b", "c", "d"], 4)


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
