"""The numbers of the early boost test (test 4) equal the same computations made independently here: the run-level
regression of early minus final BPB on loops with HC2 errors, its cluster-robust loops x phase check, and the
eval curves it reads."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import statsmodels.formula.api as smf

from clowncar.analysis.curves import BOOST_MARGIN, early_boost_test, eval_curves
from clowncar.analysis.result import UNDECIDED
from clowncar.analysis.stats import LONE_RUN, t_test_power


def power_of(effect: float, se: float, df: float) -> float:
    """Power at alpha 0.05 of a t test on a coefficient `effect` with standard error `se` (the power function is
    checked against scipy's non-central t on its own in test_stats.py)."""
    return t_test_power(effect / se, df)


def curves(seed: int = 3, runs_per_loop: int = 3) -> tuple[pd.DataFrame, pd.DataFrame]:
    rng = np.random.default_rng(seed)
    steps = np.r_[0, 1, np.arange(50, 501, 50)]  # step 0 is before training: never an early eval
    runs, evals = [], []
    for lp in (1, 2, 3):
        for s in range(runs_per_loop):
            uid = f"l{lp}s{s}"
            bpb = 2 + 2 * np.exp(-steps / 120) - 0.03 * lp * np.exp(-steps / 100) + rng.normal(0, 0.004, steps.size)
            runs.append({"run_id": uid, "loops": float(lp), "seed": float(100 * lp + s)})
            evals.append(pd.DataFrame({"trial_uid": uid, "step": steps, "mode": "standard", "weights": "raw",
                                       "val_bpb": bpb, "note": np.where(steps == 50, None, "x")}))
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
    assert res.margin == BOOST_MARGIN and res.n_runs == 9 and res.n_steps == 9 * 12
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
    assert check["status"] == "ok" and check["evals"] == 108
    assert (check["wald_F"], check["wald_p"]) == pytest.approx((float(w.statistic), float(w.pvalue)), rel=1e-9)


def test_eval_curves_keep_one_mode_of_unquantized_evals() -> None:
    _, evals = curves(runs_per_loop=1)
    e = eval_curves(evals.assign(step=evals["step"].astype(str)))
    assert set(e["mode"]) == {"standard"} and set(e["weights"]) == {"raw"} and len(e) == 36
    assert e["step"].dtype.kind in "if" and e["val_bpb"].min() > 1.0
    assert list(e["trial_uid"].unique()) == ["l1s0", "l2s0", "l3s0"]
    assert all(g["step"].is_monotonic_increasing for _, g in e.groupby("trial_uid"))


def test_eval_curves_drop_quantized_evals_and_keep_the_most_common_weights_and_mode() -> None:
    _, evals = curves(runs_per_loop=1)
    raw = evals[evals["weights"] == "raw"]
    quantized = raw.assign(weights="quantized", val_bpb=0.1)
    ema = raw.iloc[:5].assign(weights="ema", val_bpb=0.2)
    e = eval_curves(pd.concat([raw, quantized, quantized, ema]))  # quantized evals outnumber the raw ones
    assert set(e["weights"]) == {"raw"} and e["val_bpb"].min() > 1.0
    assert "index" not in e.columns and list(e.index) == list(range(len(e)))


def test_integer_run_ids_match_the_run_tables_text_ids() -> None:
    runs, evals = curves()
    ids = {uid: i for i, uid in enumerate(runs["run_id"])}
    res = early_boost_test(evals.assign(trial_uid=evals["trial_uid"].map(ids)),
                           runs.assign(run_id=runs["run_id"].map(ids).astype(str)))
    assert res.n_runs == 9


def test_no_evals_or_evals_without_bpb_are_not_enough_data() -> None:
    runs, evals = curves()
    for e in (None, pd.DataFrame(), evals.drop(columns=["val_bpb"])):
        assert early_boost_test(e, runs).status == UNDECIDED


def test_early_boost_needs_four_runs_and_two_loop_counts() -> None:
    runs, evals = curves(runs_per_loop=1)
    res = early_boost_test(evals, runs)
    assert res.status == UNDECIDED and "3 run(s) with an eval curve" in res.verdict
    runs, evals = curves()
    res = early_boost_test(evals, runs.assign(loops=2.0))
    assert res.status == UNDECIDED and "1 distinct loop count(s)" in res.verdict


def test_one_run_alone_at_a_loop_count_gives_no_boost_estimate() -> None:
    """Four runs, one of them at 1 loop: its robust variance is 0/0, which rounding made a finite number (and
    a 'signal' at p = 0.02) before this was checked."""
    runs, evals = curves()
    keep = ["l1s0", "l2s0", "l2s1", "l2s2"]
    res = early_boost_test(evals[evals["trial_uid"].isin(keep)], runs[runs["run_id"].isin(keep)])
    assert res.status == UNDECIDED and res.verdict.endswith(f"boost ~ loops: {LONE_RUN}")


def test_runs_without_an_early_eval_are_left_out_and_none_at_all_is_not_enough_data(monkeypatch) -> None:
    runs, evals = curves()
    late = evals.assign(trial_uid="a_late", step=evals["step"] + 400)[evals["trial_uid"] == "l1s0"]
    res = early_boost_test(pd.concat([late, evals]), pd.concat([runs, pd.DataFrame([{"run_id": "a_late",
                                                                                      "loops": 2.0}])]))
    assert res.n_runs == 9 and "a_late" not in res.runs
    res = early_boost_test(late, pd.DataFrame([{"run_id": "a_late", "loops": 2.0, "seed": 1.0}]))
    assert res.status == UNDECIDED and res.n_runs == 0
    assert early_boost_test(pd.DataFrame(), runs).status == UNDECIDED


def test_eval_rows_are_read_from_text_and_a_run_without_a_seed_still_counts() -> None:
    runs, evals = curves()
    evals = evals[["trial_uid", "step", "val_bpb"]].astype(object)  # exactly the columns it needs, as text
    evals = evals[~evals.index.isin(evals.index[evals["val_bpb"] == 0.5])]
    evals = pd.concat([evals, pd.DataFrame({"trial_uid": ["l1s0", "l1s0"], "step": ["n/a", 75],
                                            "val_bpb": [1.5, "x"]}, dtype=object)], ignore_index=True)
    e = eval_curves(evals)
    assert len(e) == 9 * 12 and e["val_bpb"].dtype.kind == "f"
    res = early_boost_test(evals, runs.assign(seed=np.where(runs["run_id"] == "l1s0", np.nan, runs["seed"])))
    assert res.n_runs == 9 and res.p_value is not None


def test_runs_without_loops_are_not_enough_data_and_runs_without_seeds_have_no_seed_blocks() -> None:
    runs, evals = curves()
    res = early_boost_test(evals, runs.drop(columns=["loops"]))
    assert res.status == UNDECIDED and res.verdict.endswith("(not recorded for any run: loops)")
    res = early_boost_test(evals, runs.drop(columns=["seed"]))
    assert res.n_runs == 9 and "C(seed)" not in res.method


def test_a_failing_interaction_check_says_why_and_leaves_the_test_standing(monkeypatch) -> None:
    import clowncar.analysis.curves as curves_module

    real = curves_module.ols

    def no_cluster(formula, data, cov="HC3", **kw):
        if cov == "cluster":
            raise ValueError("boom")
        return real(formula, data, cov=cov, **kw)

    monkeypatch.setattr(curves_module, "ols", no_cluster)
    runs, evals = curves()
    res = early_boost_test(evals, runs)
    assert res.extra["interaction_check"] == {"status": "skipped: ValueError: boom"} and res.p_value is not None


def test_the_early_boost_fits_one_row_per_start_and_clusters_by_start(sims) -> None:
    """Cadence siblings are one unit: the estimate is that of the sweep with each start's curves averaged, the
    result names all 28 runs, and the interaction check clusters on the 12 starts."""
    from clowncar.analysis.frames import run_table

    trials, evals = sims["siblings"](np.random.default_rng(6))
    runs = run_table(trials)
    start = {uid: uid.rsplit("c", 1)[0] for uid in trials["trial_uid"]}
    by_hand_evals = (evals.assign(trial_uid=evals["trial_uid"].map(start))
                     .groupby(["trial_uid", "step"], as_index=False)["val_bpb"].mean()
                     .assign(mode="standard", weights="raw"))
    by_hand = run_table(trials.assign(trial_uid=trials["trial_uid"].map(start)).drop_duplicates("trial_uid"))
    got, want = early_boost_test(evals, runs), early_boost_test(by_hand_evals, by_hand)
    assert (got.effect, got.p_value) == pytest.approx((want.effect, want.p_value), rel=1e-9)
    assert (got.n_runs, got.extra["units"], len(got.tables["per_run"])) == (28, 12, 28)
    assert "start_key" not in got.tables["per_run"][0]
    check = got.extra["interaction_check"]
    d = evals.merge(runs[["run_id", "loops"]].rename(columns={"run_id": "trial_uid"}), on="trial_uid")
    frac = d["step"] / d.groupby("trial_uid")["step"].transform("max")
    d = d.assign(phase=np.where(frac <= 0.3, "early", np.where(frac < 1, "middle", "final")))
    fit = smf.ols("val_bpb ~ loops * C(phase)", d).fit(
        cov_type="cluster", cov_kwds={"groups": pd.factorize(d["trial_uid"].map(start))[0]}, use_t=True)
    assert check["status"] == "ok" and check["evals"] == len(d)
    names = [n for n in fit.params.index if n.startswith("loops:")]
    wald = fit.wald_test(", ".join(f"{n} = 0" for n in names), scalar=True)
    assert check["wald_p"] == pytest.approx(float(wald.pvalue), rel=1e-9)


def test_every_text_and_table_of_the_boost_test_matches_the_snapshot(snapshot) -> None:
    runs, evals = curves()
    few_runs, few_evals = curves(runs_per_loop=1)
    snapshot("boost_snapshot", {
        "boost": [early_boost_test(evals, runs)],
        "boost_three_runs": [early_boost_test(few_evals, few_runs)],
        "boost_one_loop_count": [early_boost_test(evals, runs.assign(loops=2.0))],
        "boost_four_runs": [early_boost_test(evals, runs[runs["run_id"].isin(["l1s0", "l1s1", "l2s0", "l2s1"])])],
        "boost_no_evals": [early_boost_test(pd.DataFrame(), runs)],
        "boost_lone_loop_count": [early_boost_test(evals[evals["trial_uid"].isin(["l1s0", "l2s0", "l2s1", "l2s2"])],
                                                   runs)],
    })
