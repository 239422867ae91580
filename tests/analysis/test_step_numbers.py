"""The numbers of the step-level signal tests (C-step vs N-step loss, the step after a C-step) and of the early
boost test equal the same computations made independently here: per-run trend + HAC fits, the t test across
runs, residual and probe deltas, the run-level boost regression and its cluster-robust check."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import patsy
import pytest
import statsmodels.api as sm
import statsmodels.formula.api as smf
from scipy import stats

from clowncar.analysis.cn_steps import LOSS_MARGIN, _hac_lags, _period, _trend, cn_loss_test, cn_tests
from clowncar.analysis.curves import BOOST_MARGIN, early_boost_test, eval_curves
from clowncar.analysis.frames import step_kind_table
from clowncar.analysis.result import UNDECIDED


def power_of(effect: float, se: float, df: float) -> float:
    crit = stats.t.isf(0.025, df)
    return float(stats.nct.sf(crit, df, effect / se) + stats.nct.cdf(-crit, df, effect / se))


def assert_t_across(res, values: list[float]) -> None:
    """Effect, CI and p of a one-sample t test of `values`, and an MDE with 80% power at their spread."""
    v = np.array(values)
    t = stats.ttest_1samp(v, 0.0)
    ci = t.confidence_interval(0.95)
    assert res.effect == pytest.approx(v.mean(), rel=1e-9, abs=1e-15)
    assert (res.ci_low, res.ci_high) == pytest.approx((ci.low, ci.high), rel=1e-9)
    assert res.p_value == pytest.approx(t.pvalue, rel=1e-9)
    assert power_of(res.mde, v.std(ddof=1) / math.sqrt(v.size), v.size - 1) == pytest.approx(0.8, abs=1e-6)
    assert res.margin == LOSS_MARGIN and res.unit == "nats" and res.n_runs == v.size


def steps_frame(runs: int = 4, steps: int = 120, cadence: int = 3, cn: float = 0.03, after_c: float = 0.0,
                seed: int = 1, phases: bool = True) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    t = np.arange(1, steps + 1)
    is_c = (t - 1) % cadence == 0
    prev_c = np.r_[False, is_c[:-1]]
    frames = []
    for r in range(runs):
        loss = 3 + 3 * np.exp(-t / 40) + cn * is_c + after_c * prev_c + rng.normal(0, 0.02, steps)
        f = pd.DataFrame({"trial_uid": f"run{r}", "step": t, "kind": np.where(is_c, "C", "N"), "train_loss": loss})
        if phases:
            f["phase"] = np.where(t <= steps // 2, "warm", "main")
        frames.append(f)
    return pd.concat(frames, ignore_index=True)


def run_fit(g: pd.DataFrame, lags: int) -> tuple[sm.regression.linear_model.RegressionResults, np.ndarray]:
    """The per-run fit done by hand: loss on a B-spline of the step (df from the run's length) and is_C."""
    step = g["step"].to_numpy(float)
    basis = np.asarray(patsy.dmatrix(f"bs(x, df={min(5, max(3, step.size // 40))})", {"x": step}))
    c = (g["kind"] == "C").to_numpy(float)
    y = g["train_loss"].to_numpy(float)
    fit = sm.OLS(y, np.column_stack([basis, c])).fit(cov_type="HAC", cov_kwds={"maxlags": lags}, use_t=True)
    return fit, y - sm.OLS(y, basis).fit().fittedvalues


@pytest.mark.parametrize(("n", "period", "lags"), [(100, 3, 6), (240, 1, 4), (10000, 1, 11), (10000, 8, 16),
                                                   (100, 0, 4), (1000, 2, 6)])
def test_hac_lags_are_newey_west_or_two_cadence_periods(n: int, period: int, lags: int) -> None:
    assert _hac_lags(n, period) == lags


@pytest.mark.parametrize(("c_at", "period"), [([0, 3, 6, 9], 3), ([0, 3, 7, 9], 3), ([5], 1), ([], 1),
                                              ([0, 4, 8, 9], 4)])
def test_the_cadence_period_is_the_median_gap_between_c_steps(c_at: list[int], period: int) -> None:
    c = np.zeros(12)
    c[c_at] = 1
    assert _period(c) == period


@pytest.mark.parametrize(("steps", "columns"), [(80, 4), (159, 4), (160, 5), (200, 6), (400, 6)])
def test_the_trend_has_three_to_five_spline_degrees_of_freedom_by_run_length(steps: int, columns: int) -> None:
    assert _trend(np.arange(1.0, steps + 1)).shape == (steps, columns)  # intercept + df spline columns


def test_cn_loss_is_the_t_test_of_the_per_run_hac_coefficients() -> None:
    steps = steps_frame()
    res, fits = cn_loss_test(step_kind_table(steps))
    coefs = []
    for r, g in steps.groupby("trial_uid"):
        fit, resid = run_fit(g, lags=6)
        coefs.append(fit.params[-1])
        row = next(x for x in res.tables["within_run_hac"] if x["run"] == r)
        ci = fit.conf_int()[-1]
        assert (row["coef"], row["ci_low"], row["ci_high"], row["p_hac"]) == pytest.approx(
            (fit.params[-1], ci[0], ci[1], fit.pvalues[-1]), rel=1e-9)
        assert row["hac_maxlags"] == 6 and row["steps"] == 120
        np.testing.assert_allclose(fits[r]["resid"], resid, rtol=0, atol=1e-12)
        is_c, warm = g["kind"].eq("C").to_numpy(), g["phase"].eq("warm").to_numpy()
        for ph, rows in (("warm", warm), ("main", ~warm)):
            want = resid[rows & is_c].mean() - resid[rows & ~is_c].mean()
            assert fits[r]["by_phase"][ph] == pytest.approx(want, rel=1e-9)
    assert_t_across(res, coefs)
    assert res.n_steps == 480 and res.runs == ["run0", "run1", "run2", "run3"]
    assert res.effect == pytest.approx(0.03, abs=0.01) and res.status == "signal"
    table = {row["phase"]: row for row in res.tables["by_phase_across_runs"]}
    assert sorted(table) == ["main", "warm"]
    warm = [fits[r]["by_phase"]["warm"] for r in sorted(fits)]
    t = stats.ttest_1samp(warm, 0.0)
    assert (table["warm"]["runs"], table["warm"]["mean_c_minus_n"], table["warm"]["p"]) == pytest.approx(
        (4, np.mean(warm), t.pvalue), rel=1e-9)
    assert (table["warm"]["ci_low"], table["warm"]["ci_high"]) == pytest.approx(tuple(t.confidence_interval()),
                                                                                rel=1e-9)


def test_without_logged_phases_the_runs_are_cut_in_thirds() -> None:
    _, fits = cn_loss_test(step_kind_table(steps_frame(phases=False)))
    assert all(sorted(f["by_phase"]) == ["early", "late", "middle"] for f in fits.values())


def test_a_run_needs_twenty_steps_and_three_of_each_kind() -> None:
    base = steps_frame(runs=3, steps=60)
    short = steps_frame(runs=1, steps=19).assign(trial_uid="short")
    enough = steps_frame(runs=1, steps=20).assign(trial_uid="twenty")
    few_c = steps_frame(runs=1, steps=60, cadence=25).assign(trial_uid="three_c")  # C at steps 1, 26, 51
    two_c = steps_frame(runs=1, steps=60, cadence=30).assign(trial_uid="two_c")
    res, _ = cn_loss_test(step_kind_table(pd.concat([base, short, enough, few_c, two_c])))
    assert res.runs == ["run0", "run1", "run2", "three_c", "twenty"]
    assert res.n_steps == 3 * 60 + 20 + 60


def test_fewer_than_three_runs_give_not_enough_data_with_the_within_run_estimates() -> None:
    res, fits = cn_loss_test(step_kind_table(steps_frame(runs=2)))
    assert res.status == UNDECIDED and "2 run(s) with both C- and N-steps (at least 3 needed" in res.verdict
    assert len(res.tables["within_run_hac"]) == 2 and len(fits) == 2


def test_the_step_after_a_c_step_is_the_residual_difference_of_contiguous_n_steps() -> None:
    steps = steps_frame(runs=4, steps=120, cadence=3, cn=0.0, after_c=0.05, seed=4)
    steps = steps[~((steps["trial_uid"] == "run1") & (steps["step"] == 50))]  # a gap: step 51 has no known predecessor
    res = next(r for r in cn_tests(steps) if r.key == "1b_next_step")
    assert res.extra["source"] == "residuals"
    per_run, used = [], 0
    for _, g in steps.groupby("trial_uid"):
        _, resid = run_fit(g, lags=6)
        step, c = g["step"].to_numpy(), g["kind"].eq("C").to_numpy()
        prev_c = np.r_[False, c[:-1]]
        sel = np.r_[False, np.diff(step) == 1] & ~c
        after_c, after_n = resid[sel & prev_c], resid[sel & ~prev_c]
        per_run.append(after_c.mean() - after_n.mean())
        used += after_c.size + after_n.size
    assert_t_across(res, per_run)
    assert res.n_steps == used and [row["after_c_minus_after_n"] for row in res.tables["per_run"]] == \
        pytest.approx(per_run, rel=1e-9)


def probes_frame(steps: pd.DataFrame, every: int, per_c: float, seed: int = 2) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    frames = []
    for uid, g in steps.groupby("trial_uid"):
        c_count = np.cumsum(g["kind"].eq("C").to_numpy())
        t = g["step"].to_numpy()
        held = 3 + 2 * np.exp(-t / 50) + per_c * c_count + rng.normal(0, 0.002, t.size)
        at = np.arange(every, t.size + 1, every) - 1
        frames.append(pd.DataFrame({"trial_uid": uid, "step": t[at], "probe_loss": held[at]}))
    return pd.concat(frames, ignore_index=True)


def test_with_probes_the_update_effect_is_the_per_run_regression_on_c_steps_per_interval() -> None:
    steps = steps_frame(runs=3, steps=150, cadence=3, cn=0.0, seed=6)
    probes = probes_frame(steps, every=7, per_c=0.01)
    res = next(r for r in cn_tests(steps, probes) if r.key == "1b_next_step")
    assert res.extra["source"] == "probe"
    per_run = []
    for uid, p in probes.groupby("trial_uid"):
        g = steps[steps["trial_uid"] == uid]
        pst, pl = p["step"].to_numpy(float), p["probe_loss"].to_numpy(float)
        c_by_step = np.cumsum(g["kind"].eq("C").to_numpy())[pst.astype(int) - 1]
        delta, n_c = np.diff(pl), np.diff(c_by_step)
        trend = np.asarray(patsy.dmatrix(f"bs(x, df={min(5, max(3, delta.size // 8))})", {"x": pst[1:]}))
        per_run.append(sm.OLS(delta, np.column_stack([n_c, trend])).fit().params[0])
    assert_t_across(res, per_run)
    assert res.n_steps == sum(len(p) - 1 for _, p in probes.groupby("trial_uid"))
    assert res.effect == pytest.approx(0.01, abs=0.003)


# -- test 4: early boost -----------------------------------------------------------------------------------------

def curves(seed: int = 3, runs_per_loop: int = 3) -> tuple[pd.DataFrame, pd.DataFrame]:
    rng = np.random.default_rng(seed)
    steps = np.arange(0, 501, 50)
    runs, evals = [], []
    for lp in (1, 2, 3):
        for s in range(runs_per_loop):
            uid = f"l{lp}s{s}"
            bpb = 2 + 2 * np.exp(-steps / 120) - 0.03 * lp * np.exp(-steps / 100) + rng.normal(0, 0.004, steps.size)
            runs.append({"run_id": uid, "loops": float(lp), "seed": float(100 * lp + s)})
            evals.append(pd.DataFrame({"trial_uid": uid, "step": steps, "mode": "standard", "weights": "raw",
                                       "val_bpb": bpb}))
            # rows the test must ignore: a quantized eval and a sliding eval of another mode, both very low
            evals.append(pd.DataFrame({"trial_uid": uid, "step": [500, 250], "mode": ["standard", "sliding"],
                                       "weights": ["quantized", "raw"], "val_bpb": [0.5, 0.5]}))
    return pd.DataFrame(runs), pd.concat(evals, ignore_index=True)


def test_early_boost_is_the_hc2_slope_of_early_minus_final_bpb_on_loops() -> None:
    runs, evals = curves()
    res = early_boost_test(evals, runs)
    clean = evals[(evals["weights"] == "raw") & (evals["mode"] == "standard")]
    rows = []
    for uid, g in clean.groupby("trial_uid"):
        early = g[(g["step"] > 0) & (g["step"] <= 150)]["val_bpb"].mean()  # first 30% of 500 steps, step 0 left out
        final = g.loc[g["step"] == 500, "val_bpb"].item()
        rows.append({"run_id": uid, "boost": early - final})
    d = pd.DataFrame(rows).merge(runs, on="run_id")
    fit = smf.ols("boost ~ loops", d).fit(cov_type="HC2", use_t=True)
    ci = fit.conf_int().loc["loops"]
    assert res.effect == pytest.approx(fit.params["loops"], rel=1e-9)
    assert (res.ci_low, res.ci_high, res.p_value) == pytest.approx((ci[0], ci[1], fit.pvalues["loops"]), rel=1e-9)
    assert power_of(res.mde, fit.bse["loops"], fit.df_resid) == pytest.approx(0.8, abs=1e-6)
    assert res.margin == BOOST_MARGIN and res.n_runs == 9 and res.n_steps == 9 * 11
    assert res.effect < 0 and res.status == "signal"  # the planted early advantage of more loops


def test_the_boost_check_is_a_cluster_robust_wald_test_of_loops_by_phase() -> None:
    runs, evals = curves()
    check = early_boost_test(evals, runs).extra["interaction_check"]
    d = eval_curves(evals).merge(runs.rename(columns={"run_id": "trial_uid"}), on="trial_uid")
    frac = d["step"] / 500
    d["phase"] = np.where(frac <= 0.3, "early", np.where(frac < 1, "middle", "final"))
    fit = smf.ols("val_bpb ~ loops * C(phase)", d).fit(cov_type="cluster", use_t=True,
                                                       cov_kwds={"groups": pd.factorize(d["trial_uid"])[0]})
    w = fit.wald_test("loops:C(phase)[T.final] = 0, loops:C(phase)[T.middle] = 0", scalar=True)
    assert check["status"] == "ok" and check["evals"] == 99
    assert (check["wald_F"], check["wald_p"]) == pytest.approx((float(w.statistic), float(w.pvalue)), rel=1e-9)


def test_eval_curves_keep_one_mode_of_unquantized_evals() -> None:
    _, evals = curves(runs_per_loop=1)
    e = eval_curves(evals.assign(step=evals["step"].astype(str)))
    assert set(e["mode"]) == {"standard"} and set(e["weights"]) == {"raw"} and len(e) == 33
    assert e["step"].dtype.kind in "if" and e["val_bpb"].min() > 1.0
    assert list(e["trial_uid"].unique()) == ["l1s0", "l2s0", "l3s0"]
    assert all(g["step"].is_monotonic_increasing for _, g in e.groupby("trial_uid"))


def test_early_boost_needs_four_runs_and_two_loop_counts() -> None:
    runs, evals = curves(runs_per_loop=1)
    res = early_boost_test(evals, runs)
    assert res.status == UNDECIDED and "3 run(s) with an eval curve" in res.verdict
    runs, evals = curves()
    res = early_boost_test(evals, runs.assign(loops=2.0))
    assert res.status == UNDECIDED and "1 distinct loop count(s)" in res.verdict
