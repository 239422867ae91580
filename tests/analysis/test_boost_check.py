"""The early-boost test's cluster-robust check (loops x phase over every eval) when its standard errors are
undefined: runs whose residuals leave a term no cluster variation, and curves the model fits exactly. The check's
numbers on ordinary curves are in test_step_numbers.py."""

from __future__ import annotations

import warnings

import numpy as np
import pandas as pd
import pytest

from clowncar.analysis.curves import early_boost_test


def offset_curves(noise: float = 0.0, flat: bool = False) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Curves that differ between runs only by an offset (or 2.0 everywhere: `flat`), plus `noise` per eval."""
    rng = np.random.default_rng(1)
    steps = np.arange(50, 501, 50)
    runs, evals = [], []
    for lp in (1, 2, 3):
        for s in range(3):
            uid, offset = f"l{lp}s{s}", rng.normal(0, 0.01)
            runs.append({"run_id": uid, "loops": float(lp), "seed": float(s)})
            bpb = 2 + offset + 0.5 * (1 - steps / 500) - 0.01 * lp * (steps < 500) + noise * rng.normal(size=10)
            if flat:
                bpb = 2.0 + noise * rng.normal(size=10)
            evals.append(pd.DataFrame({"trial_uid": uid, "step": steps, "val_bpb": bpb}))
    return pd.DataFrame(runs), pd.concat(evals, ignore_index=True)


def test_a_cluster_check_without_run_to_run_variation_is_skipped_with_the_terms_named() -> None:
    # every run's residuals cancel in the phase directions, so their cluster-robust variance is 0 up to rounding
    # (a NaN standard error and a meaningless Wald F); eval noise of 1e-4 BPB gives them a real, small variance
    # (about 1e-4 of the classical one, where the run offsets count) and the check runs
    runs, evals = offset_curves()
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # no "invalid value encountered in sqrt" on the way
        res = early_boost_test(evals, runs)
    assert res.extra["interaction_check"] == {"status": (
        "skipped: the cluster-robust covariance is singular (no run-to-run variation left in these terms, so their "
        "standard errors and the Wald test are undefined): C(phase)[T.final], C(phase)[T.middle], "
        "loops:C(phase)[T.final], loops:C(phase)[T.middle]")}
    assert res.p_value is not None and res.effect == pytest.approx(-0.01)  # the run-level test still stands
    runs, evals = offset_curves(noise=1e-4)
    assert early_boost_test(evals, runs).extra["interaction_check"]["status"] == "ok"


def test_a_cluster_check_of_curves_it_fits_exactly_is_skipped() -> None:
    # residuals of ~1e-15 (flat curves), and of 1e-11 BPB (1e-20 of the evals' sum of squares in their sum of
    # squares: far below any measured difference): every variance is rounding noise
    for noise in (0.0, 1e-11):
        runs, evals = offset_curves(noise, flat=True)
        check = early_boost_test(evals, runs).extra["interaction_check"]
        assert check == {"status": "skipped: every eval lies on loops x phase exactly (the residuals are zero up to "
                                   "rounding), so the standard errors and the Wald test are undefined"}, noise
