"""Each signal test finds a planted effect of known size (power >= 0.8 over repeated simulations) and keeps its
false-positive rate at alpha on data with no effect: 200 simulations split over four RNG seeds, whose count of
false positives must lie inside the central 99.9% of Binomial(200, alpha), the count a test calibrated at alpha
gives. A fixed band (alpha +/- 0.03) fails a calibrated test at one seed in twenty; this interval fails it at one
in a thousand, whatever the seed, and still fails a test whose real rate is three times alpha."""

from __future__ import annotations

import multiprocessing

import numpy as np
import pytest
from scipy import stats

from clowncar.analysis.cn_steps import cn_tests
from clowncar.analysis.curves import early_boost_test
from clowncar.analysis.frames import run_table
from clowncar.analysis.runlevel import quant_gap_tests, width_tests
from clowncar.analysis.seeds import sharing_test

ALPHA = 0.05
N_POWER = 40
N_NULL = 200
NULL_SEEDS = 4  # the null simulations are split over this many RNG streams
MISS = 0.001  # chance that a test calibrated at ALPHA fails the check


def null_interval(n: int = N_NULL, alpha: float = ALPHA, miss: float = MISS) -> tuple[int, int]:
    """The central 1 - miss range of false-positive counts of a test calibrated at alpha over n null runs."""
    lo, hi = stats.binom.ppf(miss / 2, n, alpha), stats.binom.isf(miss / 2, n, alpha)
    return int(lo), int(hi)


_NULL_JOB: tuple = ()
"""(rate, p_of, per_seed, seed) of the check in progress: forked workers inherit it (closures do not pickle)."""


def _null_hits(k: int) -> int:
    rate, p_of, per_seed, seed = _NULL_JOB
    return round(rate(p_of, per_seed, seed + 1000 * k) * per_seed)


def assert_calibrated(rate, p_of, seed: int) -> None:
    """False positives of `p_of` over N_NULL null simulations (NULL_SEEDS seeds from `seed` on) lie inside
    null_interval(): consistent with a false-positive rate of ALPHA. The seeds' streams are independent, so two
    forked processes run them (the same counts as one process, in half the time on two cores)."""
    global _NULL_JOB
    _NULL_JOB = (rate, p_of, N_NULL // NULL_SEEDS, seed)
    with multiprocessing.get_context("fork").Pool(2) as pool:
        hits = sum(pool.map(_null_hits, range(NULL_SEEDS)))
    lo, hi = null_interval()
    assert lo <= hits <= hi, f"{hits}/{N_NULL} false positives; a test at alpha={ALPHA} gives {lo}..{hi}"


def test_null_interval_holds_a_calibrated_test_and_fails_a_miscalibrated_one() -> None:
    lo, hi = null_interval()
    inside = stats.binom.cdf(hi, N_NULL, ALPHA) - stats.binom.cdf(lo - 1, N_NULL, ALPHA)
    assert 1 - MISS <= inside < 1  # exactly the stated chance, not a hand-picked band
    assert lo <= 17 <= hi  # early boost at seed 101 gave 17/200 (0.085): no reason to fail a calibrated test
    assert stats.binom.sf(hi, N_NULL, 3 * ALPHA) > 0.9  # a test at 3 x alpha is caught nine times in ten


def _by_key(results, key):
    return next(r for r in results if r.key == key)


# -- test 1: C vs N loss, and the step after a C-step ------------------------------------------------------------

def cn_p(sims, effect, key, **kw):
    def one(rng):
        steps, probes = sims["steps"](rng, **kw, **effect)
        return _by_key(cn_tests(steps, probes if len(probes) else None), key).p_value
    return one


def test_cn_loss_detects_planted_difference_under_drift(sims, rate):
    assert rate(cn_p(sims, {"cn_effect": 0.02}, "1a_cn_loss", runs=5, steps=150), N_POWER, 1) >= 0.8


@pytest.mark.slow
def test_cn_loss_false_positive_rate_stays_near_alpha_under_drift(sims, rate):
    assert_calibrated(rate, cn_p(sims, {}, "1a_cn_loss", runs=5, steps=150), 2)


def test_next_step_via_residuals_detects_update_effect(sims, rate):
    kw = {"runs": 5, "steps": 150, "cadence": 3}
    assert rate(cn_p(sims, {"update_effect": 0.04}, "1b_next_step", **kw), N_POWER, 3) >= 0.8


@pytest.mark.slow
def test_next_step_via_residuals_false_positive_rate_stays_near_alpha(sims, rate):
    kw = {"runs": 5, "steps": 150, "cadence": 3}
    assert_calibrated(rate, cn_p(sims, {}, "1b_next_step", **kw), 4)


def test_next_step_via_probes_detects_update_effect(sims, rate):
    kw = {"runs": 5, "steps": 150, "cadence": 2, "probe_every": 5}
    assert rate(cn_p(sims, {"update_effect": 0.02}, "1b_next_step", **kw), N_POWER, 5) >= 0.8


@pytest.mark.slow
def test_next_step_via_probes_false_positive_rate_stays_near_alpha(sims, rate):
    kw = {"runs": 5, "steps": 150, "cadence": 2, "probe_every": 5}
    assert_calibrated(rate, cn_p(sims, {}, "1b_next_step", **kw), 6)


SHARED_BATCHES = {"runs": 5, "steps": 150, "cadence": 3, "shared_sd": 0.03}
"""Every run reads the same batch at step t, and the batch moves every run's loss alike (sd 0.03 nats)."""


def units_t_p(sims, key):
    """p of the plain t test across the runs (the spread of their estimates alone), on SHARED_BATCHES."""
    def one(rng):
        res = _by_key(cn_tests(sims["steps"](rng, **SHARED_BATCHES)[0]), key)
        table = res.tables["within_run_hac"] if key == "1a_cn_loss" else res.tables["per_run"]
        return stats.ttest_1samp([row.get("coef", row.get("after_c_minus_after_n")) for row in table], 0).pvalue
    return one


@pytest.mark.parametrize(("key", "seed"), [("1a_cn_loss", 8), ("1b_next_step", 9)])
def test_the_step_tests_stay_calibrated_when_every_run_shares_each_steps_batch(sims, rate, key, seed):
    assert_calibrated(rate, cn_p(sims, {}, key, **SHARED_BATCHES), seed)
    # what the shared part does to a test that cannot see it: more false positives than alpha allows
    assert rate(units_t_p(sims, key), N_NULL, seed) * N_NULL > null_interval()[1]


def test_next_step_uses_probes_when_present_and_says_so(sims):
    steps, probes = sims["steps"](np.random.default_rng(0), cadence=2, probe_every=5)
    res = _by_key(cn_tests(steps, probes), "1b_next_step")
    assert res.extra["source"] == "probe" and "probe" in res.method
    sparse = steps[steps["step"] % 2 == 0]  # logged every 2nd step: C-steps per probe interval are unknown
    assert _by_key(cn_tests(sparse, probes), "1b_next_step").extra["source"] == "residuals"
    res = _by_key(cn_tests(steps, None), "1b_next_step")
    assert res.extra["source"] == "residuals"
    assert res.status == "not enough data to decide" and "cadence >= 3" in res.verdict


# -- tests 2 and 3: run-level regressions ----------------------------------------------------------------------

def grid_p(sims, fn, key, **effect):
    def one(rng):
        return _by_key(fn(run_table(sims["grid"](rng, **effect))), key).p_value
    return one


@pytest.mark.parametrize(("key", "effect"), [("2a_gap_loops", {"gap_per_loop": 0.0015}),
                                             ("2b_gap_cadence", {"gap_per_cfrac": 0.004})])
def test_quant_gap_regression_detects_planted_slope(sims, rate, key, effect):
    assert rate(grid_p(sims, quant_gap_tests, key, **effect), N_POWER, 7) >= 0.8


@pytest.mark.slow
@pytest.mark.parametrize("key", ["2a_gap_loops", "2b_gap_cadence"])
def test_quant_gap_regression_false_positive_rate_stays_near_alpha(sims, rate, key):
    assert_calibrated(rate, grid_p(sims, quant_gap_tests, key), 8)


def test_width_attribution_detects_planted_width_effect(sims, rate):
    # the seed x width draws are the width's units: 3 seeds x 3 widths give the contrast 7 df
    assert rate(grid_p(sims, width_tests, "3a_width", width_effect=-0.015, seeds=3), N_POWER, 9) >= 0.8


@pytest.mark.slow
def test_width_attribution_false_positive_rate_stays_near_alpha(sims, rate):
    # null for width while unique layers and loops do matter: width must not absorb them
    assert_calibrated(rate, grid_p(sims, width_tests, "3a_width", layer_effect=0.02, loop_effect=-0.01), 10)


def test_nested_f_detects_sharing_beyond_width(sims, rate):
    assert rate(grid_p(sims, width_tests, "3b_sharing_beyond_width", loop_effect=0.008), N_POWER, 11) >= 0.8


@pytest.mark.slow
def test_nested_f_false_positive_rate_stays_near_alpha(sims, rate):
    assert_calibrated(rate, grid_p(sims, width_tests, "3b_sharing_beyond_width", width_effect=-0.05), 12)


def test_width_estimate_recovers_planted_size(sims):
    res = _by_key(width_tests(run_table(sims["grid"](np.random.default_rng(3), width_effect=-0.03, seeds=4,
                                                              sd=0.002))), "3a_width")
    assert res.ci_low < -0.03 < res.ci_high
    assert abs(res.effect + 0.03) < 0.005


# -- test 4: loops x phase --------------------------------------------------------------------------------------

def boost_p(sims, boost):
    def one(rng):
        trials, evals = sims["curves"](rng, boost_per_loop=boost)
        return early_boost_test(evals, run_table(trials)).p_value
    return one


def test_early_boost_interaction_detects_decaying_advantage(sims, rate):
    assert rate(boost_p(sims, 0.04), N_POWER, 13) >= 0.8


@pytest.mark.slow
def test_early_boost_false_positive_rate_stays_near_alpha(sims, rate):
    assert_calibrated(rate, boost_p(sims, 0.0), 14)  # a constant loops effect is present, no interaction


def share_p(sims, effect):
    def one(rng):
        return sharing_test(run_table(sims["sharing"](rng, effect=effect))).p_value
    return one


def test_sharing_at_matched_params_detects_planted_difference(sims, rate):
    assert rate(share_p(sims, 0.02), N_POWER, 15) >= 0.8


@pytest.mark.slow
def test_sharing_false_positive_rate_stays_near_alpha(sims, rate):
    assert_calibrated(rate, share_p(sims, 0.0), 16)


# -- runs that share a start (seed and model): the signal sweep's cadence siblings -------------------------------

def sibling_p(sims, key):
    """The p-value of test `key` on the signal sweep's design with correlated siblings and no effect."""
    def one(rng):
        trials, evals = sims["siblings"](rng)
        runs = run_table(trials)
        if key == "4_early_boost":
            return early_boost_test(evals, runs).p_value
        if key == "5_sharing_matched_params":
            return sharing_test(runs).p_value
        return _by_key(width_tests(runs), key).p_value
    return one


@pytest.mark.slow
@pytest.mark.parametrize(("key", "seed"), [("3a_width", 17), ("3b_sharing_beyond_width", 18),
                                           ("4_early_boost", 19), ("5_sharing_matched_params", 20)])
def test_runs_of_one_start_count_once_so_correlated_siblings_keep_the_rate_near_alpha(sims, rate, key, seed):
    """Counted as 28 independent runs, these siblings (BPB correlation 0.8) gave false positives at 3-5 times
    alpha; averaged into their 12 starts, the rate is alpha's."""
    assert_calibrated(rate, sibling_p(sims, key), seed)


def test_the_signal_design_has_twelve_starts_among_its_twenty_eight_runs(sims):
    trials, evals = sims["siblings"](np.random.default_rng(0))
    runs = run_table(trials)
    results = [*width_tests(runs), sharing_test(runs), early_boost_test(evals, runs)]
    assert [(r.n_runs, r.extra["units"]) for r in results] == [(28, 4)] + [(28, 12)] * 3  # 3a: seed x width draws
    assert results[0].extra["run_units"] == 12
