"""The numbers of the step-level signal tests (C-step vs N-step loss, the step after a C-step) equal the same
computations made independently here: per-run trend + HAC fits, the two-way t test across units, residual and
probe deltas. The early boost test's numbers are in test_boost_numbers.py."""

from __future__ import annotations

import numpy as np
import pandas as pd
import patsy
import pytest
import statsmodels.api as sm
from scipy import stats

from clowncar.analysis.cn_steps import (
    LOSS_MARGIN,
    _hac_lags,
    _period,
    _phase_table,
    _trend,
    cn_loss_test,
    cn_tests,
    next_step_test,
)
from clowncar.analysis.frames import step_kind_table
from clowncar.analysis.result import UNDECIDED
from clowncar.analysis.stats import t_test_power


def assert_t_across(res, two_way, units: list[tuple[float, dict[int, float]]], block: int) -> None:
    """Effect, CI and p of the two-way t test of the units' estimates (their spread plus the covariance the units
    share step by step), and an MDE with 80% power at that standard error."""
    t = two_way.t(units, block)
    assert res.effect == pytest.approx(t["estimate"], rel=1e-9, abs=1e-15)
    assert (res.ci_low, res.ci_high) == pytest.approx((t["ci_low"], t["ci_high"]), rel=1e-9)
    assert res.p_value == pytest.approx(t["p"], rel=1e-9)
    assert res.extra["se_units"] == pytest.approx(t["se_units"], rel=1e-9)
    assert power_of(res.mde, t["se"], t["df"]) == pytest.approx(0.8, abs=1e-6)
    assert res.margin == LOSS_MARGIN and res.unit == "nats" and res.n_runs == len(units)


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
    y, x, basis = run_design(g)
    fit = sm.OLS(y, x).fit(cov_type="HAC", cov_kwds={"maxlags": lags}, use_t=True)
    return fit, y - sm.OLS(y, basis).fit().fittedvalues


def run_design(g: pd.DataFrame) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    step = g["step"].to_numpy(float)
    basis = np.asarray(patsy.dmatrix(f"bs(x, df={min(5, max(3, step.size // 40))})", {"x": step}))
    c = (g["kind"] == "C").to_numpy(float)
    return g["train_loss"].to_numpy(float), np.column_stack([basis, c]), basis


def mean_difference_shares(two_way, step: np.ndarray, y: np.ndarray, first: np.ndarray) -> dict[int, float]:
    """Each row's share of mean(y[first]) - mean(y[~first]), as {step: share}."""
    x = np.column_stack([first, ~first]).astype(float)
    d = two_way.shares(x, y, 0) - two_way.shares(x, y, 1)
    return dict(zip(step.astype(int).tolist(), d, strict=True))


@pytest.mark.parametrize(("n", "period", "lags"), [(100, 3, 6), (240, 1, 4), (10000, 1, 11), (10000, 8, 16),
                                                   (100, 0, 4), (1000, 2, 6), (20, 1, 2), (20, 0, 2)])
def test_hac_lags_are_newey_west_or_two_cadence_periods(n: int, period: int, lags: int) -> None:
    assert _hac_lags(n, period) == lags


@pytest.mark.parametrize(("c_at", "period"), [([0, 3, 6, 9], 3), ([0, 3, 7, 9], 3), ([5], 1), ([], 1),
                                              ([0, 4, 8, 9], 4), ([2, 7], 5)])
def test_the_cadence_period_is_the_median_gap_between_c_steps(c_at: list[int], period: int) -> None:
    c = np.zeros(12)
    c[c_at] = 1
    assert _period(c) == period


@pytest.mark.parametrize(("steps", "columns"), [(80, 4), (159, 4), (160, 5), (200, 6), (400, 6)])
def test_the_trend_has_three_to_five_spline_degrees_of_freedom_by_run_length(steps: int, columns: int) -> None:
    assert _trend(np.arange(1.0, steps + 1)).shape == (steps, columns)  # intercept + df spline columns


def test_cn_loss_is_the_two_way_t_test_of_the_per_run_hac_coefficients(two_way) -> None:
    steps = steps_frame()
    res, fits = cn_loss_test(step_kind_table(steps))
    units, warm_units = [], []
    for r, g in steps.groupby("trial_uid"):
        fit, resid = run_fit(g, lags=6)
        y, x, _ = run_design(g)
        units.append((fit.params[-1], dict(zip(g["step"].tolist(), two_way.shares(x, y, -1), strict=True))))
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
        warm_units.append((fits[r]["by_phase"]["warm"], mean_difference_shares(
            two_way, g["step"].to_numpy()[warm], resid[warm], is_c[warm])))
    assert_t_across(res, two_way, units, block=6)
    assert res.n_steps == 480 and res.runs == ["run0", "run1", "run2", "run3"]
    assert res.effect == pytest.approx(0.03, abs=0.01) and res.status == "signal"
    table = {row["phase"]: row for row in res.tables["by_phase_across_runs"]}
    assert sorted(table) == ["main", "warm"]
    t = two_way.t(warm_units, 6)
    assert (table["warm"]["runs"], table["warm"]["mean_c_minus_n"], table["warm"]["p"]) == pytest.approx(
        (4, t["estimate"], t["p"]), rel=1e-9)
    assert (table["warm"]["ci_low"], table["warm"]["ci_high"]) == pytest.approx((t["ci_low"], t["ci_high"]),
                                                                                rel=1e-9)


def test_without_logged_phases_the_runs_are_cut_in_thirds() -> None:
    _, fits = cn_loss_test(step_kind_table(steps_frame(phases=False)))
    assert all(sorted(f["by_phase"]) == ["early", "late", "middle"] for f in fits.values())


def test_the_phase_table_lists_phases_in_training_order_not_by_name() -> None:
    """Thirds of the run read early, middle, late (not early, late, middle); logged phases in the order training
    reaches them (warm, then main)."""
    thirds, _ = cn_loss_test(step_kind_table(steps_frame(phases=False)))
    assert [row["phase"] for row in thirds.tables["by_phase_across_runs"]] == ["early", "middle", "late"]
    logged, _ = cn_loss_test(step_kind_table(steps_frame()))
    assert [row["phase"] for row in logged.tables["by_phase_across_runs"]] == ["warm", "main"]


def test_a_run_needs_twenty_steps_and_three_of_each_kind() -> None:
    base = steps_frame(runs=3, steps=60)
    short = steps_frame(runs=1, steps=19).assign(trial_uid="short")
    enough = steps_frame(runs=1, steps=20).assign(trial_uid="twenty")
    few_c = steps_frame(runs=1, steps=60, cadence=25).assign(trial_uid="three_c")  # C at steps 1, 26, 51
    two_c = steps_frame(runs=1, steps=60, cadence=30).assign(trial_uid="two_c")
    res, _ = cn_loss_test(step_kind_table(pd.concat([base, short, enough, few_c, two_c])))
    assert res.runs == ["run0", "run1", "run2", "three_c", "twenty"]
    assert res.n_steps == 3 * 60 + 20 + 60


def kinds_run(uid: str, kinds: str, phases: str | None = None, seed: int = 0) -> pd.DataFrame:
    """A run whose step t has kind kinds[t - 1] (and phase phases[t - 1]): a decaying loss plus noise."""
    rng = np.random.default_rng(seed)
    t = np.arange(1, len(kinds) + 1)
    f = pd.DataFrame({"trial_uid": uid, "step": t, "kind": list(kinds),
                      "train_loss": 3 + np.exp(-t / 10) + rng.normal(0, 0.02, t.size)})
    return f.assign(phase=list(phases)) if phases else f


def test_a_run_needs_three_n_steps_as_well() -> None:
    runs = [kinds_run("three_n", "C" * 17 + "NNN", seed=1), kinds_run("two_n", "C" * 18 + "NN", seed=2)]
    _, fits = cn_loss_test(step_kind_table(pd.concat(runs)))
    assert list(fits) == ["three_n"]


def test_a_phase_difference_needs_three_c_and_three_n_steps_in_that_phase() -> None:
    kinds = "CNCNCN" + "CCNNNN" + "CNNNNN" + "NNNNN"  # phase a: 3 C 3 N; b: 2 C 4 N; c: 1 C 5 N; d: 5 N
    phases = "aaaaaa" + "bbbbbb" + "cccccc" + "ddddd"
    _, fits = cn_loss_test(step_kind_table(kinds_run("r", kinds, phases)))
    assert list(fits["r"]["by_phase"]) == ["a"]
    kinds = "CNCNCN" + "CNNCCC" + "NNNNN" + "CCCCC"  # b: 4 C 2 N
    _, fits = cn_loss_test(step_kind_table(kinds_run("r", kinds, "aaaaaa" + "bbbbbb" + "ccccc" + "ddddd")))
    assert list(fits["r"]["by_phase"]) == ["a"]


def test_a_phase_is_placed_by_where_each_run_reaches_it_as_a_fraction_of_its_steps() -> None:
    """A long run reaches its main phase halfway (step 101 of 200), a short run its cool-down near its end (step 55
    of 60): the table reads warm, main, cool, though main starts at a later step than cool does."""
    long = kinds_run("long", "CN" * 100, "w" * 100 + "m" * 100, seed=1)
    short = kinds_run("short", "CN" * 30, "w" * 54 + "c" * 6, seed=2)
    third = kinds_run("third", "CN" * 50, "w" * 100, seed=3)  # the table needs three runs
    frame = pd.concat([long, short, third]).replace({"phase": {"w": "warm", "m": "main", "c": "cool"}})
    res, fits = cn_loss_test(step_kind_table(frame))
    assert fits["long"]["phase_starts"] == {"warm": pytest.approx(1 / 200), "main": pytest.approx(101 / 200)}
    assert fits["short"]["phase_starts"] == {"warm": pytest.approx(1 / 60), "cool": pytest.approx(55 / 60)}
    assert [row["phase"] for row in res.tables["by_phase_across_runs"]] == ["warm", "main", "cool"]


def test_a_phase_row_gets_a_t_test_from_three_runs_that_differ() -> None:
    phases = {"r1": {"x": 0.1, "y": 0.2, "z": 0.3, "w": 0.5}, "r2": {"x": 0.2, "y": 0.2, "z": 0.4},
              "r3": {"x": 0.4, "y": 0.2}}
    nothing_shared = (np.arange(3), np.zeros(3))  # each step's share: 0 (the two-way part is tested elsewhere)
    fits = {r: {"by_phase": by, "phase_shares": dict.fromkeys(by, nothing_shared), "hac_lags": 2, "period": 1,
                "phase_starts": {p: i / 4 for i, p in enumerate(by)}}
            for r, by in phases.items()}
    rows = {row["phase"]: row for row in _phase_table(fits)}
    t = stats.ttest_1samp([0.1, 0.2, 0.4], 0.0)
    assert (rows["x"]["runs"], rows["x"]["mean_c_minus_n"], rows["x"]["p"]) == pytest.approx((3, 0.7 / 3, t.pvalue))
    assert (rows["x"]["ci_low"], rows["x"]["ci_high"]) == pytest.approx(tuple(t.confidence_interval()))
    assert rows["y"] == {"phase": "y", "runs": 3, "units": 3, "mean_c_minus_n": pytest.approx(0.2)}  # no spread
    assert rows["z"] == {"phase": "z", "runs": 2, "units": 2, "mean_c_minus_n": pytest.approx(0.35)}
    assert rows["w"] == {"phase": "w", "runs": 1, "units": 1, "mean_c_minus_n": 0.5}
    # runs corrected by one reference are one unit: r1 and r2 share ref "a", so x is t over (0.15, 0.4) -> none
    shared = {r: {**f, "reference": ref} for (r, f), ref in zip(fits.items(), ("a", "a", None), strict=True)}
    rows = {row["phase"]: row for row in _phase_table(shared)}
    assert rows["x"] == {"phase": "x", "runs": 3, "units": 2, "mean_c_minus_n": pytest.approx((0.15 + 0.4) / 2)}
    assert rows["z"] == {"phase": "z", "runs": 2, "units": 1, "mean_c_minus_n": pytest.approx(0.35)}


def test_the_step_after_needs_three_n_steps_after_each_kind() -> None:
    runs = {"after_c_3": "CNNNNNNCNNNNNNCNNNNN",  # C at 1, 8, 15: three N-steps right after a C
            "after_c_2": "CNNNNNNNNNCNNNNNNNNC",  # the last C ends the run: two
            "after_n_3": "CNCNCNCNCNCNNCNNCNNC",  # N after N at 13, 16, 19: three
            "after_n_2": "CNCNCNCNCNCNCNCNNCNN"}  # N after N at 17 and 20: two
    frames = [kinds_run(uid, k, seed=i) for i, (uid, k) in enumerate(runs.items())]
    fits = cn_loss_test(step_kind_table(pd.concat(frames)))[1]
    assert len(fits) == 4
    res = next_step_test(fits, None, None)
    assert sorted(res.runs) == ["after_c_3", "after_n_3"]


def test_fewer_than_three_runs_give_not_enough_data_with_the_within_run_estimates() -> None:
    res, fits = cn_loss_test(step_kind_table(steps_frame(runs=2)))
    assert res.status == UNDECIDED and "2 run(s) with both C- and N-steps (at least 3 needed" in res.verdict
    assert len(res.tables["within_run_hac"]) == 2 and len(fits) == 2


def test_the_step_after_without_any_step_rows_says_there_are_none_not_that_the_cadence_is_low() -> None:
    res = next_step_test({}, None, None)
    assert res.status == UNDECIDED and res.n_runs == 0
    assert res.verdict == (f"{UNDECIDED}: no step rows with C/N kinds and training losses, and no probe losses")
    low = next_step_test(cn_loss_test(step_kind_table(steps_frame(runs=3, cadence=2)))[1], None, None)
    assert low.status == UNDECIDED and "it needs cadence >= 3" in low.verdict


def test_the_step_after_says_why_no_run_could_be_fitted() -> None:
    """The demo's smoke sweep logs steps of one kind per run (cadence 1, one to three loops): 1b must say that, not
    that there are no step rows."""
    one_kind = pd.concat([kinds_run("all_c", "C" * 30, seed=1), kinds_run("all_n", "N" * 30, seed=2)])
    for steps in (one_kind, step_kind_table(one_kind)):  # the raw frame or the kind table
        res = next_step_test({}, None, steps)
        assert res.verdict == (f"{UNDECIDED}: none of the 2 run(s) has both C- and N-steps (each keeps one step kind "
                               "throughout: cadence 0 or 1, or a single loop), so no update can be set beside one "
                               "of the other kind")
    short = pd.concat([one_kind, kinds_run("short", "CN" * 9, seed=3)])  # 18 steps: fewer than 20
    res = next_step_test(cn_loss_test(step_kind_table(short))[1], None, step_kind_table(short))
    assert res.verdict == (f"{UNDECIDED}: no run with both C- and N-steps has enough of them to fit (at least 20 "
                           "logged steps, 3 of each kind)")


def test_the_step_after_a_c_step_is_the_residual_difference_of_contiguous_n_steps(two_way) -> None:
    steps = steps_frame(runs=4, steps=120, cadence=3, cn=0.0, after_c=0.05, seed=4)
    steps = steps[~((steps["trial_uid"] == "run1") & (steps["step"] == 50))]  # a gap: step 51 has no known predecessor
    res = next(r for r in cn_tests(steps) if r.key == "1b_next_step")
    assert res.extra["source"] == "residuals"
    units, used = [], 0
    for _, g in steps.groupby("trial_uid"):
        _, resid = run_fit(g, lags=6)
        step, c = g["step"].to_numpy(), g["kind"].eq("C").to_numpy()
        prev_c = np.r_[False, c[:-1]]
        sel = np.r_[False, np.diff(step) == 1] & ~c
        after_c, after_n = resid[sel & prev_c], resid[sel & ~prev_c]
        units.append((after_c.mean() - after_n.mean(),
                      mean_difference_shares(two_way, step[sel], resid[sel], prev_c[sel])))
        used += after_c.size + after_n.size
    assert_t_across(res, two_way, units, block=6)
    assert res.n_steps == used and [row["after_c_minus_after_n"] for row in res.tables["per_run"]] == \
        pytest.approx([u[0] for u in units], rel=1e-9)


def probe_rows(uid: str, at_steps: list[int] | np.ndarray, per_c: float, cadence: int = 3, seed: int = 2
               ) -> pd.DataFrame:
    """Probe losses at `at_steps` of a run whose step t is a C-step when (t - 1) % cadence == 0: a decaying
    curve plus `per_c` for every C-step update done so far."""
    rng = np.random.default_rng(seed)
    t = np.asarray(at_steps)
    c_done = (t - 1) // cadence + 1
    return pd.DataFrame({"trial_uid": uid, "step": t, "mode": "N",
                         "probe_loss": 3 + 2 * np.exp(-t / 50) + per_c * c_done + rng.normal(0, 0.002, t.size)})


def probe_fit(steps: pd.DataFrame, p: pd.DataFrame, two_way=None) -> float | tuple[float, dict[int, float]]:
    """The per-run probe regression done by hand: change in probe loss on C-steps per interval, a B-spline
    trend (df from the number of intervals) and the interval length when it varies."""
    pst, pl = p["step"].to_numpy(float), p["probe_loss"].to_numpy(float)
    c_by_step = np.cumsum(steps["kind"].eq("C").to_numpy())[pst.astype(int) - int(steps["step"].min())]
    delta, n_c, k = np.diff(pl), np.diff(c_by_step), np.diff(pst)
    trend = np.asarray(patsy.dmatrix(f"bs(x, df={min(5, max(3, delta.size // 8))})", {"x": pst[1:]}))
    x = np.column_stack([n_c, trend, k] if k.std() > 0 else [n_c, trend])
    coef = float(sm.OLS(delta, x).fit().params[0])
    if two_way is None:
        return coef
    return coef, dict(zip(pst[1:].astype(int).tolist(), two_way.shares(x, delta, 0), strict=True))


def test_with_probes_the_update_effect_is_the_per_run_regression_on_c_steps_per_interval(two_way) -> None:
    def run(uid: str, n: int, seed: int) -> pd.DataFrame:
        return steps_frame(runs=1, steps=n, cadence=3, cn=0.0, seed=seed).assign(trial_uid=uid)

    irregular = np.cumsum(np.tile([7, 8, 7], 12))
    used = {  # uid: (steps, probe steps): sorted after the skipped ones, so a skip that stopped the loop shows
        "u0_first_step": (run("u0_first_step", 150, 1), np.r_[1, np.arange(7, 151, 7)]),
        "u1_df4": (run("u1_df4", 240, 2), np.arange(7, 241, 7)),  # 33 intervals: a trend of 4 df
        "u2_df5": (run("u2_df5", 360, 3), np.arange(7, 361, 7)),  # 50 intervals: 5 df (the cap)
        "u3_irregular": (run("u3_irregular", 260, 4), irregular[irregular <= 260]),  # interval length varies
        "u4_eight": (run("u4_eight", 60, 5), np.arange(7, 57, 7)),  # 8 probes: 7 intervals for 5 columns
    }
    skipped = {
        "a_no_steps": (None, np.arange(7, 151, 7)),
        "b_seven": (run("b_seven", 60, 6), np.arange(7, 50, 7)),  # 7 probes
        "c_sparse": (run("c_sparse", 150, 7).iloc[1::2], np.arange(7, 151, 7)),  # every 2nd step logged
        "d_multiple": (run("d_multiple", 150, 8), np.arange(6, 151, 6)),  # 2 C-steps in every interval
        "e_late": (run("e_late", 150, 9).iloc[19:], np.arange(7, 151, 7)),  # steps logged from step 20
        "f_gap": (run("f_gap", 150, 10).drop(index=145), np.arange(7, 148, 7)),  # step 146 missing, probe at 147
        "g_after": (run("g_after", 150, 11).iloc[100:], np.arange(7, 71, 7)),  # no logged step by the last probe
        "h_eight_irregular": (run("h_eight_irregular", 60, 12), irregular[:8]),  # 7 intervals for 6 columns
    }
    steps = pd.concat([f for f, _ in {**used, **skipped}.values() if f is not None], ignore_index=True)
    probes = pd.concat([probe_rows(uid, at, 0.01, seed=i) for i, (uid, (_, at)) in
                        enumerate({**used, **skipped}.items())], ignore_index=True)
    probes.loc[probes["trial_uid"] == "u1_df4", "mode"] = None  # a gap in a column the test does not read
    res = next(r for r in cn_tests(steps, probes) if r.key == "1b_next_step")
    assert res.extra["source"] == "probe"
    units = [probe_fit(f, probes[probes["trial_uid"] == uid], two_way) for uid, (f, _) in used.items()]
    assert res.runs == list(used)
    assert_t_across(res, two_way, units, block=max(_hac_lags(len(at) - 1, 1) for _, at in used.values()))
    assert res.n_steps == sum(len(at) - 1 for _, at in used.values())
    assert res.effect == pytest.approx(0.01, abs=0.003)
    raw = next_step_test(cn_loss_test(step_kind_table(steps))[1], probes, steps)  # steps not yet prepared
    assert raw.effect == res.effect and raw.runs == res.runs


def test_probes_without_a_loss_column_or_steps_fall_back_to_residuals() -> None:
    steps = steps_frame(runs=3, steps=150, cadence=3, cn=0.0, seed=6)
    probes = pd.concat([probe_rows(f"run{i}", np.arange(7, 151, 7), 0.01, seed=i) for i in range(3)])
    fits = cn_loss_test(step_kind_table(steps))[1]
    assert next_step_test(fits, probes.drop(columns=["probe_loss"]), steps).extra["source"] == "residuals"
    assert next_step_test(fits, probes, None).extra["source"] == "residuals"
    assert next_step_test(fits, probes, steps).extra["source"] == "probe"
    only = probes[["trial_uid", "step", "probe_loss"]]  # exactly the columns it reads
    assert next_step_test(fits, only, steps).extra["source"] == "probe"


# -- test 4: early boost -----------------------------------------------------------------------------------------

def test_every_text_and_table_of_the_step_tests_matches_the_snapshot(snapshot) -> None:
    two_probed = steps_frame(runs=3, steps=150, cadence=3, cn=0.0, seed=6)
    probes = pd.concat([probe_rows(f"run{i}", np.arange(7, 151, 7), 0.01, seed=i) for i in range(2)])
    snapshot("step_snapshot", {
        "cn": cn_tests(steps_frame()),
        "cn_raw_steps": [cn_loss_test(steps_frame())[0]],
        "cn_three_runs": cn_tests(steps_frame(runs=3)),
        "cn_two_runs": cn_tests(steps_frame(runs=2)),
        "cn_no_phases": cn_tests(steps_frame(phases=False)),
        "cn_empty": cn_tests(pd.DataFrame()),
        "next_residuals": cn_tests(steps_frame(cn=0.0, after_c=0.05, seed=4)),
        "next_cadence_two": cn_tests(steps_frame(cadence=2)),
        "next_probes_of_two_runs": cn_tests(two_probed, probes),
    })


def power_of(effect: float, se: float, df: float) -> float:
    """Power at alpha 0.05 of a t test on a coefficient `effect` with standard error `se` (the power function is
    checked against scipy's non-central t on its own in test_stats.py)."""
    return t_test_power(effect / se, df)

