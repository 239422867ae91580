"""The numbers of the run-level signal tests (quantization gap, width attribution, sharing at matched parameters,
seed variance) equal the same fits made independently here with statsmodels and scipy: effect, CI, p, the
minimum detectable effect (checked by its power), run counts, and the rules that pick the formula. The power
tests beside these show that a test finds what it should; these pin what the report prints."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest
import statsmodels.formula.api as smf
from scipy import stats
from statsmodels.stats.anova import anova_lm
from statsmodels.stats.outliers_influence import variance_inflation_factor

from clowncar.analysis.frames import UNITS
from clowncar.analysis.result import UNDECIDED
from clowncar.analysis.runlevel import (
    GAP_MARGIN,
    best_per_width,
    matched_width,
    quant_gap_tests,
    seed_block,
    width_tests,
)
from clowncar.analysis.seeds import PARAM_TOL, SHARE_MARGIN, _strata, sharing_test
from clowncar.analysis.stats import COLLINEAR, LONE_RUN, t_test_power
from clowncar.analysis.width_effect import WIDTH_MARGIN, _scaled


def hc3(formula: str, data: pd.DataFrame, cov: str = "HC3"):
    return smf.ols(formula, data).fit(cov_type=cov, use_t=True)


def assert_coef(res, fit, term: str, scale: float = 1.0) -> None:
    ci = fit.conf_int(alpha=0.05).loc[term]
    assert res.effect == pytest.approx(fit.params[term] * scale, rel=1e-9, abs=1e-15)
    assert (res.ci_low, res.ci_high) == pytest.approx((ci[0] * scale, ci[1] * scale), rel=1e-9, abs=1e-15)
    assert res.p_value == pytest.approx(fit.pvalues[term], rel=1e-9, abs=1e-300)
    # the minimum detectable effect is the one a t test on this coefficient finds with 80% power
    assert power_of(res.mde / scale, fit.bse[term], fit.df_resid) == pytest.approx(0.8, abs=1e-6)


def runs_frame(n: int = 24, seed: int = 5, *, seeds: list[int] | None = None) -> pd.DataFrame:
    """Runs with loops, cadence, width and unique layers varying independently, and planted slopes."""
    rng = np.random.default_rng(seed)
    i = np.arange(n)
    loops = 1 + i % 4
    cadence = np.array([1, 2, 4])[(i // 4) % 3]
    width = np.array([384, 448, 512, 576])[(i * 3 + i // 4) % 4]
    layers = np.array([3, 5])[(i + i // 4) % 2]
    gap = 0.01 + 0.002 * loops + 0.003 / cadence + rng.normal(0, 0.001, n)
    bpb = 2.0 - 0.02 * np.log(width / 384) + 0.004 * loops + 0.002 * layers + rng.normal(0, 0.003, n)
    return pd.DataFrame({"run_id": [f"r{k}" for k in i], "loops": loops.astype(float),
                         "cadence": cadence.astype(float), "crawl_frac": 1.0 / cadence, "width": width.astype(float),
                         "unique_layers": layers.astype(float), "quant_gap": gap, "bpb": bpb,
                         "seed": np.array(seeds if seeds is not None else 100 + i, dtype=float)})


def by_key(results, key):
    return next(r for r in results if r.key == key)


# -- quantization gap --------------------------------------------------------------------------------------------

def test_quant_gap_slopes_are_the_hc3_fit_with_log_width_as_covariate() -> None:
    runs = runs_frame()
    d = runs.assign(log_width=np.log(runs["width"]))
    fit = hc3("quant_gap ~ loops + crawl_frac + log_width", d)
    out = quant_gap_tests(runs)
    assert [r.key for r in out] == ["2a_gap_loops", "2b_gap_cadence"]
    loops, cad = out
    assert_coef(loops, fit, "loops")
    assert_coef(cad, fit, "crawl_frac")
    for r in out:
        assert r.n_runs == 24 and r.runs == runs["run_id"].tolist() and r.margin == GAP_MARGIN
        assert "OLS quant_gap ~ loops + crawl_frac + log_width, HC3" in r.method
        assert [row["term"] for row in r.tables["coefficients"]] == ["Intercept", "loops", "crawl_frac", "log_width"]
    assert loops.unit == "BPB per loop" and cad.unit == "BPB per unit C-fraction"
    assert loops.status == "signal" and loops.p_value < 1e-6  # the planted 0.002 BPB per loop


def test_a_gap_no_larger_than_the_margin_is_said_in_the_verdict() -> None:
    from clowncar.analysis.runlevel import _margin_beyond_gap

    assert all("mean absolute quantization gap" not in r.verdict for r in quant_gap_tests(runs_frame()))  # ~0.016 BPB
    tiny = runs_frame().assign(quant_gap=lambda x: x["quant_gap"] / 50)  # a CPU demo's gap: ~0.0003 BPB
    mean = tiny["quant_gap"].abs().mean()
    for r, unit in zip(quant_gap_tests(tiny), ["BPB per loop", "BPB per unit C-fraction"], strict=True):
        assert r.verdict.endswith(f"; the runs' mean absolute quantization gap is only {mean:.2g} BPB, no larger than the "
                                  f"margin of {GAP_MARGIN} {unit}: at this scale the margin says little")
    at = pd.Series([GAP_MARGIN, -GAP_MARGIN])
    assert _margin_beyond_gap(at, "u") is not None and _margin_beyond_gap(at * 1.01, "u") is None


def test_quant_gap_drops_a_run_without_a_gap_and_names_the_eval_mode() -> None:
    runs = runs_frame()
    runs.loc[3, "quant_gap"] = np.nan
    runs.attrs["gap_mode"] = "sliding"
    d = runs.drop(index=3).assign(log_width=lambda x: np.log(x["width"]))
    fit = hc3("quant_gap ~ loops + crawl_frac + log_width", d)
    loops = by_key(quant_gap_tests(runs), "2a_gap_loops")
    assert loops.n_runs == 23 and "r3" not in loops.runs
    assert_coef(loops, fit, "loops")
    assert "the gap in the sliding eval" in loops.method


def test_quant_gap_method_claims_no_eval_mode_when_no_run_recorded_a_gap() -> None:
    runs = runs_frame().assign(quant_gap=np.nan)
    runs.attrs["gap_mode"] = None  # what run_table says when no run has a gap in either eval mode
    for r in quant_gap_tests(runs):
        assert r.n_runs == 0 and "sliding" not in r.method and "standard eval" not in r.method
        assert r.method.endswith("; no run recorded a quantization gap")


def test_each_gap_test_method_names_its_own_model_when_it_cannot_estimate() -> None:
    """2b is the C-fraction's coefficient: where the C-fraction takes one value its method line still names a
    model with crawl_frac (not 2a's loops-only fit), and 2a's names loops where loops take one value."""
    loops, cad = quant_gap_tests(runs_frame().assign(crawl_frac=1.0))
    assert loops.effect is not None and loops.method.startswith("OLS quant_gap ~ loops + log_width,")
    assert cad.effect is None and cad.method.startswith("OLS quant_gap ~ loops + crawl_frac + log_width,")
    loops, cad = quant_gap_tests(runs_frame().assign(loops=2.0))
    assert loops.effect is None and loops.method.startswith("OLS quant_gap ~ loops + crawl_frac + log_width,")
    assert cad.method.startswith("OLS quant_gap ~ crawl_frac + log_width,")
    loops, cad = quant_gap_tests(runs_frame().iloc[0:0])  # no run at all: each names the model it would fit
    assert loops.method.startswith("OLS quant_gap ~ loops,") and cad.method.startswith("OLS quant_gap ~ crawl_frac,")


def test_quant_gap_without_width_variation_fits_loops_and_cadence_only() -> None:
    runs = runs_frame().assign(width=512.0)
    fit = hc3("quant_gap ~ loops + crawl_frac", runs)
    loops, cad = quant_gap_tests(runs)
    assert_coef(loops, fit, "loops")
    assert_coef(cad, fit, "crawl_frac")
    assert "log_width" not in loops.method


def test_a_single_loop_count_leaves_the_cadence_slope_fitted_alone() -> None:
    runs = runs_frame().assign(loops=2.0)
    d = runs.assign(log_width=np.log(runs["width"]))
    fit = hc3("quant_gap ~ crawl_frac + log_width", d)
    loops, cad = quant_gap_tests(runs)
    assert loops.status == UNDECIDED and loops.effect is None
    assert "loops takes a single value among the 24 runs with a quantization gap" in loops.verdict
    assert_coef(cad, fit, "crawl_frac")


def test_seeds_shared_across_configs_enter_the_gap_fit_as_blocks() -> None:
    runs = runs_frame(seeds=[1, 2, 3] * 8)
    assert seed_block(runs) == " + C(seed)"
    d = runs.assign(log_width=np.log(runs["width"]))
    fit = hc3("quant_gap ~ loops + crawl_frac + log_width + C(seed)", d)
    loops = by_key(quant_gap_tests(runs), "2a_gap_loops")
    assert_coef(loops, fit, "loops")
    assert "+ C(seed)" in loops.method


def test_loops_and_cadence_that_vary_together_are_not_split_between_them() -> None:
    """Two layouts (2 loops at cadence 2, 4 loops at cadence 4): any two points are collinear, so a fit would
    split one gap difference between loops and cadence arbitrarily (statsmodels' pseudo-inverse) and call both
    a signal."""
    runs = runs_frame().assign(width=512.0)
    runs["loops"] = np.where(runs.index % 2 == 0, 2.0, 4.0)
    runs["crawl_frac"] = 1 / runs["loops"]
    for r in quant_gap_tests(runs):
        assert r.status == UNDECIDED and r.p_value is None and r.effect is None
        assert r.verdict.endswith(f"quant_gap ~ loops + crawl_frac: {COLLINEAR}")


def test_width_collinear_with_layers_falls_back_to_width_alone_and_says_why() -> None:
    runs = runs_frame()
    runs["unique_layers"] = np.log(runs["width"]) * 2
    d = runs.assign(log_width=np.log(runs["width"]))
    res = by_key(width_tests(runs), "3a_width")
    assert_coef(res, hc3("bpb ~ log_width", d), "log_width", scale=math.log(576 / 384))
    assert f"bpb ~ log_width + unique_layers + loops: {COLLINEAR}; the width effect is marginal (not adjusted)" \
        in res.warnings


@pytest.mark.parametrize(("seeds", "block"), [
    ([1, 2, 3, 1, 2, 3, 1, 2], " + C(seed)"),  # 3 seeds over 8 runs, each seed at least twice
    ([1, 2, 1, 2, 1, 2, 1, 2], " + C(seed)"),  # two seeds are enough
    ([1, 2, 3, 4, 1, 2, 3, 4], ""),  # 4 seeds over 8 runs: not fewer than half the runs
    ([1, 1, 1, 1, 1, 1, 1, 2], ""),  # seed 2 appears once: no block can be estimated for it
    ([1] * 8, ""),  # one seed: nothing to block
    ([1, 2, 3, 1, 2, 3, 1, None], ""),  # a run without a seed
])
def test_the_seed_enters_as_a_block_only_when_every_seed_repeats_across_configs(seeds, block) -> None:
    assert seed_block(pd.DataFrame({"seed": pd.array(seeds, dtype="Float64").astype(float)})) == block


def test_seed_block_needs_a_seed_column() -> None:
    assert seed_block(pd.DataFrame({"bpb": [1.0, 2.0]})) == ""


@pytest.mark.parametrize(("n", "fitted"), [(5, False), (6, True)])
def test_the_gap_regression_needs_three_runs_more_than_its_terms(n: int, fitted: bool) -> None:
    runs = runs_frame(n=12).iloc[[0, 1, 2, 5, 6, 9][:n]].reset_index(drop=True)
    loops = by_key(quant_gap_tests(runs), "2a_gap_loops")
    assert (loops.p_value is not None) is fitted, loops.verdict
    if not fitted:
        assert loops.verdict.endswith(
            "quant_gap ~ loops + crawl_frac + log_width: 5 runs leave 1 residual df for 4 coefficients (at least 2 "
            "needed)")


def test_an_empty_run_table_gives_not_enough_data_for_both_gap_slopes() -> None:
    out = quant_gap_tests(runs_frame().iloc[0:0])
    assert [r.status for r in out] == [UNDECIDED, UNDECIDED]
    assert all("0 run(s) with a quantization gap" in r.verdict for r in out)


# -- width attribution -------------------------------------------------------------------------------------------

def test_width_effect_is_the_log_width_slope_times_the_log_width_span() -> None:
    runs = runs_frame()
    d = runs.assign(log_width=np.log(runs["width"]))
    full = hc3("bpb ~ log_width + unique_layers + loops", d)
    marginal = hc3("bpb ~ log_width", d)
    span = math.log(576 / 384)
    res = by_key(width_tests(runs), "3a_width")
    assert_coef(res, full, "log_width", scale=span)
    assert res.extra["formula"] == "bpb ~ log_width + unique_layers + loops"
    assert res.extra["log_width_coef"]["estimate"] == pytest.approx(full.params["log_width"], rel=1e-12)
    assert res.unit == "BPB (width 384 -> 576)" and res.margin == WIDTH_MARGIN and res.n_runs == 24
    only = res.tables["width_only_model"][0]
    ci = marginal.conf_int().loc["log_width"]
    assert (only["effect"], only["ci_low"], only["ci_high"], only["p"]) == pytest.approx(
        (marginal.params["log_width"] * span, ci[0] * span, ci[1] * span, marginal.pvalues["log_width"]), rel=1e-9)
    assert res.effect == pytest.approx(-0.02 * span, abs=0.006)  # the planted width effect
    x = np.column_stack([np.ones(24), d["log_width"], d["unique_layers"], d["loops"]])
    assert [row["vif"] for row in res.tables["vif"]] == pytest.approx(
        [variance_inflation_factor(x, i) for i in (1, 2, 3)], rel=1e-9)
    assert not res.warnings


def test_sharing_beyond_width_is_the_nested_f_test_of_the_classical_fits() -> None:
    runs = runs_frame()
    d = runs.assign(log_width=np.log(runs["width"]))
    small = smf.ols("bpb ~ log_width", d).fit()
    big = smf.ols("bpb ~ log_width + unique_layers + loops", d).fit()
    f = ((small.ssr - big.ssr) / 2) / (big.ssr / big.df_resid)
    res = by_key(width_tests(runs), "3b_sharing_beyond_width")
    assert res.effect == pytest.approx(f, rel=1e-9) and res.extra["F"] == res.effect
    assert res.p_value == pytest.approx(stats.f.sf(f, 2, 20), rel=1e-9)
    assert res.extra["df_num"] == 2 and res.extra["df_den"] == 20 and res.unit == "F"
    assert float(anova_lm(small, big)["F"].iloc[1]) == pytest.approx(f, rel=1e-9)


def test_collinear_width_and_layers_are_warned_about() -> None:
    runs = runs_frame()
    runs["unique_layers"] = np.round(runs["width"] / 64) + np.where(runs.index % 7 == 0, 1.0, 0.0)
    res = by_key(width_tests(runs), "3a_width")
    assert any(w.startswith("collinear predictors (VIF >= 5): log_width") for w in res.warnings), res.warnings


def test_too_few_runs_for_the_full_model_fall_back_to_width_alone_and_say_so() -> None:
    runs = runs_frame(n=5)  # 3 predictors + intercept leave 1 residual df: the full model is not fitted
    d = runs.assign(log_width=np.log(runs["width"]))
    res, nested = width_tests(runs)
    assert_coef(res, hc3("bpb ~ log_width", d), "log_width", scale=math.log(576 / 384))
    assert res.extra["formula"] == "bpb ~ log_width"
    assert ("bpb ~ log_width + unique_layers + loops: 5 runs leave 1 residual df for 4 coefficients (at least 2 "
            "needed); the width effect is marginal (not adjusted)") in res.warnings
    assert "width_only_model" not in res.tables
    assert nested.status == UNDECIDED and "5 run(s) leave 1 residual df for the full model" in nested.verdict


def test_width_attribution_needs_four_runs_and_two_widths() -> None:
    for runs in (runs_frame(n=3), runs_frame().assign(width=512.0)):
        a, b = width_tests(runs)
        assert a.status == b.status == UNDECIDED
        assert f"{len(runs)} run(s) with BPB and width" in a.verdict
    a, _ = width_tests(runs_frame().assign(width=512.0))
    assert "1 distinct width(s)" in a.verdict


def test_one_run_at_the_widest_width_cannot_carry_a_robust_width_effect() -> None:
    runs = runs_frame(n=12).assign(width=[384.0] * 11 + [512.0], unique_layers=3.0, loops=2.0)
    res = by_key(width_tests(runs), "3a_width")
    assert res.status == UNDECIDED and res.p_value is None
    assert res.verdict.startswith(f"not enough data to decide: bpb ~ log_width: {LONE_RUN}")


def test_a_missing_mde_stays_missing_when_scaled_to_the_width_span() -> None:
    assert _scaled(None, 0.4) is None and _scaled(0.5, 0.4) == pytest.approx(0.2)


def test_four_runs_at_two_widths_are_enough_for_a_width_estimate() -> None:
    runs = runs_frame(n=4).assign(width=[384.0, 384.0, 512.0, 512.0], unique_layers=3.0, loops=2.0)
    d = runs.assign(log_width=np.log(runs["width"]))
    assert_coef(by_key(width_tests(runs), "3a_width"), hc3("bpb ~ log_width", d), "log_width",
                scale=math.log(512 / 384))


def test_a_lone_run_in_the_cadence_fit_is_named_for_cadence_only() -> None:
    runs = runs_frame(n=12).assign(loops=2.0, width=512.0, crawl_frac=[0.5] * 11 + [0.25])
    loops, cad = quant_gap_tests(runs)
    assert "loops takes a single value among the 12 runs" in loops.verdict
    assert cad.verdict.endswith(f"quant_gap ~ crawl_frac: {LONE_RUN}")


def test_runs_without_a_width_column_are_not_enough_data_and_say_so() -> None:
    for res in width_tests(runs_frame().drop(columns=["width"])):
        assert res.status == UNDECIDED and res.verdict.endswith("(not recorded for any run: width)")


def test_runs_of_zero_width_are_left_out_of_the_width_test() -> None:
    runs = runs_frame()
    runs.loc[0, "width"] = 0.0
    runs.loc[1, "width"] = 1.0  # tiny but a width
    assert by_key(width_tests(runs), "3a_width").n_runs == 23


def test_without_layout_variation_there_is_no_nested_test() -> None:
    runs = runs_frame().assign(unique_layers=4.0, loops=2.0)
    a, b = width_tests(runs)
    assert a.extra["formula"] == "bpb ~ log_width" and "width_only_model" not in a.tables
    assert b.status == UNDECIDED and "unique layers and loops do not vary" in b.verdict


def test_layouts_that_width_alone_tells_apart_leave_no_nested_test_and_say_why() -> None:
    # two auto-sized layouts, two seeds each: each layout has its own width, so width spans layers and loops
    runs = pd.DataFrame({"run_id": list("abcd"), "width": [16.0, 16.0, 24.0, 24.0], "unique_layers": [5.0, 5.0, 3.0, 3.0],
                         "loops": [2.0, 2.0, 4.0, 4.0], "bpb": [2.72, 2.73, 2.64, 2.59]})
    b = by_key(width_tests(runs), "3b_sharing_beyond_width")
    assert b.status == UNDECIDED and b.p_value is None and b.verdict == (
        "not enough data to decide: among these runs unique layers and loops are a linear function of log width "
        "(each layout at its own width), so what they add cannot be told apart from width")
    assert (b.title, b.question, b.n_runs, b.runs) == (
        "Sharing beyond width", "Do unique layers and loops (sharing) explain BPB beyond width (nested F test)?", 4,
        list("abcd"))
    assert b.method == ("nested F test: anova_lm(ols(bpb ~ log_width), ols(bpb ~ log_width + unique_layers + "
                        f"loops)), one row per unit ({UNITS})")


def test_matched_width_and_best_per_width_tables() -> None:
    r = pd.DataFrame({"run_id": ["a", "b", "c", "d", "e"], "width": [384.0, 384.0, 384.0, 512.0, 512.0],
                      "unique_layers": [3.0, 3.0, 5.0, 3.0, 3.0], "loops": [2.0] * 5, "cadence": [1.0] * 5,
                      "bpb": [2.0, 2.2, 1.9, 1.8, 1.7], "label": ["A", "B", "C", "D", "E"]})
    rows = matched_width(r)
    assert [(x["comparison"], x["width"], x["unique_layers"], x["runs"], round(x["mean_bpb"], 9)) for x in rows] == [
        ("same width", 384.0, 3.0, 2, 2.1), ("same width", 384.0, 5.0, 1, 1.9),
        ("same layout", 384.0, 3.0, 2, 2.1), ("same layout", 512.0, 3.0, 2, 1.75)]
    no_cadence = matched_width(r.assign(cadence=np.nan))  # a layout key no run records still groups
    assert [(x["comparison"], x["width"], x["cadence"], x["runs"]) for x in no_cadence] == [
        ("same width", 384.0, None, 2), ("same width", 384.0, None, 1),
        ("same layout", 384.0, None, 2), ("same layout", 512.0, None, 2)]
    best = best_per_width(r)
    assert [(x["width"], x["runs"], x["best_bpb"], x["best_run"], x["best_label"], round(x["mean_bpb"], 9))
            for x in best] == [(384.0, 3, 1.9, "c", "C", 2.033333333), (512.0, 2, 1.7, "e", "E", 1.75)]


def test_the_seeds_best_per_width_contrast_is_quoted_beside_the_estimate() -> None:
    runs = runs_frame()
    res = by_key(width_tests(runs), "3a_width")
    best = runs.groupby("width")["bpb"].min()
    contrast = best[384.0] - best[576.0]
    assert res.extra["best_per_width_contrast"] == pytest.approx(contrast, rel=1e-12)
    assert f"best run at width 384 minus best at 576: {contrast:+.4f} BPB" in res.verdict


# -- sharing at matched parameter count --------------------------------------------------------------------------

def test_parameter_strata_open_a_new_group_only_past_ten_percent() -> None:
    edge = 1000 * (1 + PARAM_TOL)  # exactly 10% above the group's smallest: still the same group
    params = pd.Series([1376.0, 1000.0, 1600.0, edge, 1374.0, 1250.0], index=list("uvwxyz"))
    assert _strata(params).tolist() == [2, 0, 3, 0, 1, 1]


def sharing_frame() -> pd.DataFrame:
    rng = np.random.default_rng(9)
    rows = []
    for k, p in enumerate([1.0e6, 1.05e6, 2.0e6, 2.08e6, 4.0e6, 4.1e6, 8.0e6, 8.3e6]):
        for j in range(3):
            shared = float((k + j) % 2)
            rows.append({"run_id": f"s{k}{j}", "params": p * (1 + 0.01 * j), "shared": shared,
                         "bpb": 2.0 - 0.05 * math.log2(p / 1e6) - 0.01 * shared + rng.normal(0, 0.004),
                         "quant_gap": 0.01 + 0.003 * shared + 0.0005 * j, "seed": 100.0 + 10 * k + j})
    rows.append({"run_id": "alone", "params": 3.0e7, "shared": 1.0, "bpb": 1.5, "quant_gap": 0.02, "seed": 1.0})
    return pd.DataFrame(rows)


def test_sharing_effect_is_the_shared_coefficient_within_parameter_strata() -> None:
    runs = sharing_frame()
    res = sharing_test(runs)
    kept = runs[runs["run_id"] != "alone"].assign(stratum=lambda d: _strata(d["params"]))
    assert sorted(kept["stratum"].unique()) == [0, 1, 2, 3]
    assert_coef(res, hc3("bpb ~ shared + C(stratum)", kept), "shared")
    assert res.n_runs == 24 and "alone" not in res.runs and res.margin == SHARE_MARGIN
    assert res.extra["shared_runs"] == 12 and res.extra["unshared_runs"] == 12
    gaps = {row["shared"]: row for row in res.tables["quant_gap_by_sharing"]}
    for flag in (False, True):
        want = kept.loc[kept["shared"] == float(flag), "quant_gap"]
        assert gaps[flag]["runs"] == 12 and gaps[flag]["mean_quant_gap"] == pytest.approx(want.mean(), rel=1e-12)


def test_sharing_needs_two_runs_of_each_kind_at_matched_parameters() -> None:
    runs = sharing_frame()
    one_unshared = runs[(runs["shared"] == 1) | (runs["run_id"] == "s00")]  # strata of one kind are dropped
    res = sharing_test(one_unshared)
    assert res.status == UNDECIDED and "3 shared and 1 unshared run(s) at matched parameter count" in res.verdict
    assert sorted(res.runs) == ["s00", "s01", "s10", "s12"]


def test_two_strata_are_blocks_and_two_runs_of_each_kind_are_enough() -> None:
    runs = sharing_frame()
    two = runs[runs["params"] < 2.5e6].assign(stratum=lambda d: _strata(d["params"]))
    assert sorted(two["stratum"].unique()) == [0, 1]
    assert_coef(sharing_test(two), hc3("bpb ~ shared + C(stratum)", two), "shared")
    pairs = runs[runs["run_id"].isin(["s00", "s01", "s10", "s11"])]  # one stratum: 2 shared, 2 unshared
    assert sorted(pairs["shared"]) == [0.0, 0.0, 1.0, 1.0]
    assert_coef(sharing_test(pairs), hc3("bpb ~ shared", pairs), "shared")


def test_a_seed_that_is_also_the_stratum_leaves_sharing_collinear() -> None:
    runs = sharing_frame()
    runs = runs[runs["params"] < 2.5e6].assign(seed=lambda d: np.where(d["params"] < 1.5e6, 1.0, 2.0))
    res = sharing_test(runs)
    assert res.status == UNDECIDED and res.verdict.endswith(f"bpb ~ shared + C(stratum) + C(seed): {COLLINEAR}")


def test_the_quant_gap_table_needs_four_gaps_and_a_gap_column() -> None:
    runs = sharing_frame()
    assert "quant_gap_by_sharing" not in sharing_test(runs.drop(columns=["quant_gap"])).tables
    four = runs.assign(quant_gap=np.where(runs.index < 4, runs["quant_gap"], np.nan))
    assert [row["runs"] for row in sharing_test(four).tables["quant_gap_by_sharing"]] == [2, 2]
    three = runs.assign(quant_gap=np.where(runs.index < 3, runs["quant_gap"], np.nan))
    assert "quant_gap_by_sharing" not in sharing_test(three).tables


@pytest.mark.parametrize("column", ["bpb", "shared", "params"])
def test_sharing_without_a_column_it_needs_is_not_enough_data(column: str) -> None:
    res = sharing_test(sharing_frame().drop(columns=[column]))
    assert res.status == UNDECIDED and f"not recorded for any run: {column}" in res.verdict


def test_every_text_and_table_of_the_run_level_tests_matches_the_snapshot(snapshot) -> None:
    collinear = runs_frame().assign(width=512.0, loops=lambda d: np.where(d.index % 2 == 0, 2.0, 4.0))
    collinear["crawl_frac"] = 1 / collinear["loops"]
    tied = runs_frame().assign(unique_layers=lambda d: np.log(d["width"]) * 2)
    sharing = sharing_frame()
    snapshot("runlevel_snapshot", {
        "gap": quant_gap_tests(runs_frame()),
        "gap_seed_blocks": quant_gap_tests(runs_frame(seeds=[1, 2, 3] * 8)),
        "gap_one_loop_count": quant_gap_tests(runs_frame().assign(loops=2.0)),
        "gap_collinear": quant_gap_tests(collinear),
        "gap_five_runs": quant_gap_tests(runs_frame(n=12).iloc[[0, 1, 2, 5, 6]]),
        "gap_empty": quant_gap_tests(runs_frame().iloc[0:0]),
        "width": width_tests(runs_frame()),
        "width_six_runs": width_tests(runs_frame(n=6)),
        "width_five_runs": width_tests(runs_frame(n=5)),
        "width_tied_to_layers": width_tests(tied),
        "width_one_layout": width_tests(runs_frame().assign(unique_layers=4.0, loops=2.0)),
        "width_three_runs": width_tests(runs_frame(n=3)),
        "width_unlabelled_two_widths": width_tests(runs_frame(n=12).assign(width=lambda d: np.where(
            d.index % 2 == 0, 384.0, 512.0), cadence=np.nan)),
        "width_confounded_with_seed": width_tests(runs_frame(n=6).assign(
            width=[384.0] * 3 + [512.0] * 3, seed=[1.0] * 3 + [2.0] * 3)),
        "gap_no_cadence_column": quant_gap_tests(runs_frame().drop(columns=["crawl_frac"])),
        "sharing": [sharing_test(sharing)],
        "sharing_seed_is_stratum": [sharing_test(sharing[sharing["params"] < 2.5e6].assign(
            seed=lambda d: np.where(d["params"] < 1.5e6, 1.0, 2.0)))],
        "sharing_one_unshared": [sharing_test(sharing[(sharing["shared"] == 1) | (sharing["run_id"] == "s00")])],
    })


def power_of(effect: float, se: float, df: float) -> float:
    """Power at alpha 0.05 of a t test on a coefficient `effect` with standard error `se` (the power function is
    checked against scipy's non-central t on its own in test_stats.py)."""
    return t_test_power(effect / se, df)
